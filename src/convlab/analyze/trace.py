"""The nn.Module path: a model's forward run on meta tensors, every module's call recorded as a row.

Known leaf modules (conv, norms, activations, pooling, linear, flatten, dropout) are answered by a
shape rule instead of their own forward, and known functional ops likewise (``convlab.analyze.rules``);
everything else runs for real on the meta device. The user's model is never moved, modified or
switched between train and eval: in-place updates of its own tensors (BatchNorm's
``num_batches_tracked``) are skipped.
"""

from __future__ import annotations

import contextlib
import functools
import math

from .. import arith
from ..errors import ConvlabError, ShapeError
from . import rules
from .render import shape as _shape_text
from .rows import GLOBAL, RULES, Row, Summary, aggregate, rf_dict

# queries that only read a meta tensor's metadata: answered by torch directly
_PASSTHROUGH = {"dim", "size", "numel", "__get__", "is_floating_point", "_set_grad_enabled", "is_contiguous",
                "element_size", "__len__", "ndimension", "nelement", "stride", "is_complex",
                "_has_compatible_shallow_copy_type"}

_INPLACE_DUNDER = {"__iadd__", "__isub__", "__imul__", "__itruediv__", "__setitem__"}

# factories that make a tensor from sizes alone: created on meta during a summary (no activations)
_FACTORIES = {"zeros", "ones", "empty", "full", "rand", "randn", "randint", "randperm", "arange", "linspace",
              "logspace", "eye", "empty_strided", "normal", "tril_indices", "triu_indices"}
# matrix products convlab does not count (its MACs are conv and linear layers): named in a footnote
_UNCOUNTED = {"matmul", "__matmul__", "__rmatmul__", "bmm", "mm", "einsum", "baddbmm", "addmm", "addbmm", "mv",
              "tensordot", "bilinear", "scaled_dot_product_attention"}
# moves between devices: a meta tensor stays on meta (a dtype change still applies)
_MOVES = {"to", "cpu", "cuda", "mps", "xpu"}


# the fast paths (a walk of the modules without torch's generators, nn.Sequential's known leaves answered
# from shapes without their __call__): False runs the plain path, for the tests that compare the two
FAST = True


@contextlib.contextmanager
def plain_path():
    """For the ``with`` block, summaries take the plain path (every module called through torch)."""
    global FAST
    was, FAST = FAST, False
    try:
        yield
    finally:
        FAST = was


_INPLACE_RULES = {n for n in rules.OP_RULES if n.endswith("_") and not n.startswith("__")} | _INPLACE_DUNDER


def _meta_only(args, kwargs) -> bool:
    """Every tensor among the arguments (and inside list/tuple arguments) is a meta tensor, and no
    argument needs a deeper look (dicts, nested lists)."""
    import torch

    for a in (*args, *kwargs.values()) if kwargs else args:
        if isinstance(a, torch.Tensor):
            if not a.is_meta:
                return False
        elif isinstance(a, (list, tuple)):
            for b in a:
                if isinstance(b, torch.Tensor):
                    if not b.is_meta:
                        return False
                elif isinstance(b, (list, tuple, dict)):
                    return False
        elif isinstance(a, dict):
            return False
    return True


def summary_of_module(model, input_shape, batch_size: int) -> Summary:
    """Trace ``model`` on a meta batch of ``input_shape`` and total its rows (shared tensors once)."""
    import torch

    from ..plan import check_input_shape

    shape = check_input_shape(input_shape) if len(tuple(input_shape)) == 3 else tuple(int(v) for v in input_shape)
    x = torch.empty((batch_size, *shape), device="meta")
    x._cl_rf = ((1, 1, 0.0), (1, 1, 0.0)) if len(shape) == 3 else None
    # a lazy model itself (nn.LazyLinear(10)): its meta twin is traced, the user's stays lazy
    tracer = _Tracer(_lazy_twin(model, (x,), {}) if _is_lazy(model) else model)
    out = tracer.run(x)
    rows = tracer.rows()
    aggregate(rows)
    trainable = non_trainable = 0
    seen: set[int] = set()
    for pid, n, is_trainable in tracer.all_owned:  # every module's own tensors, shared ones once
        if pid in seen:
            continue
        seen.add(pid)
        if is_trainable:
            trainable += n
        else:
            non_trainable += n
    pbytes = 4 * (trainable + non_trainable)
    act = sum(math.prod(r.output_shape) * 4 for r in rows if r.leaf and r.output_shape
              and not isinstance(r.output_shape[0], list))
    extra = (rules.ATTENTION_RULE,) if tracer.attention else ()
    return Summary(type(model).__name__, shape, batch_size, rows, trainable, non_trainable, tracer.total_macs, pbytes,
                   act, _out_shape(out), rules=RULES + extra,
                   uncounted=tuple(f"{n} {op} call{'s' if n > 1 else ''} in {where}"
                                   for (op, where), n in tracer.uncounted.items()))


def _submodules(model) -> list[tuple[str, object]]:
    """``[(name, m) for name, m in model.named_modules() if m is not model]``, walked without torch's nested
    generators (a microsecond a module): the same modules, names and order (each module once, at its first
    place). A class with its own ``named_modules`` is asked itself, as torch would."""
    import torch.nn as nn

    base = nn.Module.named_modules
    if not FAST or type(model).named_modules is not base:
        return [(n, m) for n, m in model.named_modules() if m is not model]
    out: list[tuple[str, object]] = []
    memo = {model}

    def visit(prefix, m):
        for key, child in m._modules.items():
            if child is None:
                continue
            full = prefix + ("." if prefix else "") + key
            if type(child).named_modules is not base:
                out.extend((n, c) for n, c in child.named_modules(memo, full))
                continue
            if child in memo:
                continue
            memo.add(child)
            out.append((full, child))
            visit(full, child)

    visit("", model)
    return out


def _plain_call(cls) -> bool:
    """Calling a module of this class is torch's ``__call__`` (hooks, then ``forward``), not the class's own."""
    import torch.nn as nn

    return cls.__call__ is nn.Module.__call__ and cls._call_impl is nn.Module._call_impl and \
        cls._wrapped_call_impl is nn.Module._wrapped_call_impl


def _block_program(cls):
    """The tracer's program for one of convlab's own blocks (children in the order its forward calls them),
    while the class runs the forward written in convlab.nn.blocks; None otherwise."""
    from ..nn import blocks

    written = blocks.WRITTEN_FORWARDS.get(cls)
    if written is None or cls.forward is not written or not _plain_call(cls):
        return None
    return _PROGRAMS[cls.__name__]


def _basic_block(tr, m, x):  # relu(bn1(conv1(x))) -> bn2(conv2(.)), relu(. + shortcut(x))
    step = tr._step
    out = step(m.bn2, step(m.conv2, step(m.relu, step(m.bn1, step(m.conv1, x)))))
    identity = x if m.downsample is None else step(m.downsample, x)
    return step(m.relu, tr._add(out, identity))


def _plain_block(tr, m, x):
    step = tr._step
    out = step(m.relu, step(m.bn1, step(m.conv1, x)))
    return step(m.relu, step(m.bn2, step(m.conv2, out)))


def _bottleneck(tr, m, x):
    step = tr._step
    out = step(m.relu, step(m.bn1, step(m.conv1, x)))
    out = step(m.relu, step(m.bn2, step(m.conv2, out)))
    out = step(m.bn3, step(m.conv3, out))
    identity = x if m.downsample is None else step(m.downsample, x)
    return step(m.relu, tr._add(out, identity))


def _residual(tr, m, x):  # body(x) + (x or proj(x))
    step = tr._step
    out = step(m.body, x)
    return tr._add(out, x if m.proj is None else step(m.proj, x))


def _separable(tr, m, x):
    return tr._step(m.pointwise, tr._step(m.depthwise, x))


_PROGRAMS = {"BasicBlock": _basic_block, "PlainBlock": _plain_block,
             "Bottleneck": _bottleneck, "Residual": _residual, "SeparableConv2d": _separable}


def _plain_sequential(cls) -> bool:
    """An nn.Sequential, or a subclass keeping its forward, iteration and call (convlab's SpecNet adds only
    attributes): calling it runs each child on the previous output, nothing else."""
    import torch.nn as nn

    return issubclass(cls, nn.Sequential) and cls.forward is nn.Sequential.forward and \
        cls.__iter__ is nn.Sequential.__iter__ and _plain_call(cls)


def _global_hooks() -> bool:
    """Module hooks registered for every module (torch.nn.modules.module.register_module_forward_hook...)."""
    import torch.nn.modules.module as mm

    return bool(mm._global_forward_hooks or mm._global_forward_pre_hooks or mm._global_backward_hooks
                or mm._global_backward_pre_hooks)


def _out_shape(out):
    import torch

    if isinstance(out, torch.Tensor):
        return list(out.shape)
    if isinstance(out, (tuple, list)):
        shapes = [list(o.shape) for o in out if isinstance(o, torch.Tensor)]
        return shapes[0] if len(shapes) == 1 else shapes or None
    if isinstance(out, dict):
        return _out_shape(tuple(out.values()))
    return None


def _owned(m) -> list[tuple[int, int, bool]]:
    """A module's own counted tensors as (id, numel, trainable): its parameters and its floating-point
    running statistics (non-trainable); integer counters such as num_batches_tracked are not counted."""
    if not m._parameters and not m._buffers:  # most modules of a net (activations, containers)
        return []
    lazy = _lazy_tensor()
    own = [(id(p), p.numel(), p.requires_grad) for p in m._parameters.values()
           if p is not None and not isinstance(p, lazy)]
    if m._buffers:
        own += [(id(b), b.numel(), False) for n, b in m._buffers.items()
                if b is not None and not isinstance(b, lazy) and n.startswith("running_") and b.is_floating_point()]
    return own


@functools.lru_cache(maxsize=None)
def _lazy_tensor():
    """The class of uninitialised (lazy) parameters and buffers (torch.nn.parameter.is_lazy's test)."""
    from torch.nn.parameter import UninitializedTensorMixin

    return UninitializedTensorMixin


_ABSENT = object()


@contextlib.contextmanager
def _wrapped_forwards(modules, wrap):
    """For the ``with`` block, each ``(name, module)``'s forward is ``wrap(name, module)``: set as an
    instance attribute (faster than torch's hooks), then removed, or restored if the instance had one."""
    saved = []
    try:
        for name, m in modules:
            forward = wrap(name, m)
            saved.append((m, m.__dict__.get("forward", _ABSENT)))
            m.__dict__["forward"] = forward
        yield
    finally:
        for m, old in saved:
            if old is _ABSENT:
                del m.__dict__["forward"]
            else:
                m.__dict__["forward"] = old


class _Record:
    """One module call while tracing: where it sits, its input shape, its output (and the output's
    receptive field) once it returns, and the counts it owns (parameters counted at first use, MACs)."""

    __slots__ = ("name", "module", "depth", "in_shape", "out", "rf", "trainable", "non_trainable", "macs", "twin")

    def __init__(self, name, module, depth, in_shape, trainable, non_trainable):
        self.name = name
        self.module = module
        self.depth = depth
        self.in_shape = in_shape
        self.out = None  # torch.Size (answered by a rule) or whatever the forward returned
        self.rf = None
        self.trainable = trainable
        self.non_trainable = non_trainable
        self.macs = 0
        self.twin = None  # a lazy module's materialised meta copy (its settings, for the checks)


@functools.lru_cache(maxsize=None)
def _mode_class():
    """The torch function mode of a run: every torch function called in the forward goes to the tracer's
    ``dispatch`` (one class for all runs: making a class costs more than a small model's trace)."""
    from torch.overrides import TorchFunctionMode

    class Mode(TorchFunctionMode):
        def __init__(self, tracer):
            super().__init__()
            self.tracer = tracer

        def __torch_function__(self, func, types, args=(), kwargs=None):
            return self.tracer.dispatch(func, args, kwargs or {})

    return Mode


@functools.lru_cache(maxsize=None)
def _lazy_mixin():
    from torch.nn.modules.lazy import LazyModuleMixin

    return LazyModuleMixin


@functools.lru_cache(maxsize=None)
def _lazy_class(cls) -> bool:
    return issubclass(cls, _lazy_mixin())


def _is_lazy(m) -> bool:
    return _lazy_class(type(m)) and m.has_uninitialized_params()


def _lazy_twin(m, args, kwargs):
    """A lazy module's twin on the meta device, materialised from this call's input as the module's own
    first forward would (``initialize_parameters``, then its ``cls_to_become``); the user's module keeps
    its uninitialised parameters, its hooks and its class. Every tensor of the twin is a new meta tensor,
    so ``reset_parameters`` touches nothing of the user's."""
    import torch
    from torch.nn.parameter import UninitializedBuffer, UninitializedParameter, is_lazy

    def param(p):
        if p is None:
            return None
        if is_lazy(p):
            return UninitializedParameter(requires_grad=p.requires_grad, device="meta", dtype=p.dtype)
        return torch.nn.Parameter(p.detach().to("meta"), requires_grad=p.requires_grad)

    def buffer(b):
        if b is None:
            return None
        if is_lazy(b):
            return UninitializedBuffer(requires_grad=False, device="meta", dtype=b.dtype)
        return b.detach().to("meta")

    twin = type(m).__new__(type(m))
    twin.__dict__.update(m.__dict__)
    twin.__dict__.pop("forward", None)  # the tracer's wrapper lives on the user's instance only
    twin.__dict__.update(_parameters={k: param(p) for k, p in m._parameters.items()},
                         _buffers={k: buffer(b) for k, b in m._buffers.items()},
                         _modules=dict(m._modules), _forward_pre_hooks={}, _forward_hooks={})
    with torch._C.DisableTorchFunction(), torch.no_grad():
        twin.initialize_parameters(*args, **kwargs)
    if twin.cls_to_become is not None:
        twin.__class__ = twin.cls_to_become
    return twin


@contextlib.contextmanager
def _lazy_hooks_off(modules):
    """For the ``with`` block, lazy modules run without their parameter-inferring pre-hook (which would
    materialise the user's parameters); the hook dicts are put back as they were."""
    saved = []
    try:
        for m in modules:
            hook = m.__dict__.get("_initialize_hook")
            if hook is None or hook.id not in m._forward_pre_hooks:
                continue
            old = m._forward_pre_hooks
            saved.append((m, old))
            m._forward_pre_hooks = type(old)((k, v) for k, v in old.items() if k != hook.id)
        yield
    finally:
        for m, old in saved:
            m._forward_pre_hooks = old


class _Tracer:
    """Runs a model's forward on meta tensors, answering known modules and ops with shape rules.

    Each module's ``forward`` is wrapped for the run (an instance attribute, removed afterwards) so
    that rows are recorded without torch's slower hook path; known leaf modules are answered by a
    shape rule instead of their own forward. Other code runs under a torch function mode
    (``dispatch``).
    """

    def __init__(self, model):
        self.model = model
        self.recs: list[_Record] = []
        self.stack: list[_Record] = []
        self.total_macs = 0
        self.counted: set[int] = set()
        self.modules: list[tuple[str, object]] = _submodules(model)
        self.all_owned = _owned(model)  # the root's tensors here; every submodule's are added in run()
        self.twins: dict[int, object] = {}  # lazy modules' materialised meta twins, by id of the module
        self.twin_owned: dict[int, list] = {}
        self.temps: dict[int, object] = {}  # real tensors made during the forward (kept alive: ids stay unique)
        self.uncounted: dict[tuple[str, str], int] = {}  # (op, module name) -> calls
        self.attention = False  # an attention op was counted: its rule is stated in the summary
        # id(module) -> (its wrapped forward, name, own tensors, leaf rule, forward): the modules an
        # nn.Sequential may call without torch's __call__ (see _sequential)
        self.direct: dict[int, tuple] = {}

    chains = True  # nn.Sequential's known leaves answered from shapes (off for tracers that follow tensors)

    def run(self, x):
        import torch

        fast = FAST and self.chains and not torch._C._get_tracing_state()

        def wrap(name, m):
            if _is_lazy(m):
                return functools.partial(self._call_lazy, m, name)
            own = _owned(m)
            self.all_owned.extend(own)
            if isinstance(m, torch.nn.MultiheadAttention):  # its out_proj's weights are used, never called
                own = own + _owned(m.out_proj)
            rule, forward = rules.leaf_rule(m), m.forward
            if fast and _plain_sequential(type(m)):
                forward = functools.partial(self._sequential, m, forward)
            wrapped = functools.partial(self._call, m, name, own, rule, forward)
            if fast and _plain_call(type(m)):
                self.direct[id(m)] = (wrapped, name, own, rule, forward)
            return wrapped

        lazy = [m for _, m in [("", self.model), *self.modules] if _is_lazy(m)]
        with _lazy_hooks_off(lazy), _wrapped_forwards(self.modules, wrap), _mode_class()(self), torch.no_grad():
            try:
                root = self.model
                if fast and _plain_sequential(type(root)) and not (
                        root._forward_hooks or root._forward_pre_hooks or root._backward_hooks or
                        root._backward_pre_hooks or root._compiled_call_impl is not None or
                        "forward" in root.__dict__):
                    return self._sequential(root, root.forward, x)  # what root(x) runs, without __call__
                return root(x)
            except ConvlabError:
                raise
            except Exception as e:  # torch's own message, located at the innermost module
                raise self.error(f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None

    def _call(self, module, name, own, rule, forward, *args, **kwargs):
        # the hot path: _Record objects now, Row objects after the run (see rows())
        import torch

        with torch._C.DisableTorchFunction():  # bookkeeping reads plain attributes, untraced
            first = args[0] if args and isinstance(args[0], torch.Tensor) else next(
                (a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)), None)
            rec = self._open(name, module, own, first.shape if first is not None else None)
            if rule is not None and first is not None and len(args) == 1 and not kwargs and first.is_meta:
                out = rule(self, module, first)
                if out is not None:
                    self.stack.pop()
                    rec.out, rec.rf = out.shape, rules.rf_of(out)
                    return out
        out = forward(*args, **kwargs)
        with torch._C.DisableTorchFunction():
            self.stack.pop()
            rec.out = out
            rec.rf = rules.rf_of(out) if isinstance(out, torch.Tensor) else None
        return out

    def _sequential(self, module, forward, *args, **kwargs):
        """``nn.Sequential.forward`` (each child on the previous output) with its children called as torch's
        ``__call__`` would call them when they have no hooks (their wrapped forward, directly), and a run of
        children answered by leaf rules carried as shapes (:class:`rules.Carried`): no meta tensor between
        them, one made when something else takes the output. The rows are the plain path's (tested)."""
        import torch

        with torch._C.DisableTorchFunction():
            x = args[0] if len(args) == 1 and not kwargs else None
            plain = not isinstance(x, torch.Tensor) or not x.is_meta or _global_hooks()
        if plain:
            return forward(*args, **kwargs)
        out = self._chain(module, x)
        return out.tensor() if type(out) is rules.Carried else out

    def _chain(self, module, cur):
        """An nn.Sequential's children on ``cur`` (a tensor or a carried shape); the result may be carried."""
        step = self._step
        for child in module._modules.values():
            cur = step(child, cur)
        return cur

    def _step(self, child, cur):
        """``child(cur)`` as torch's ``__call__`` runs it when the child has no hooks: a leaf rule on the carried
        shape, a plain nn.Sequential or one of convlab's own blocks (nn.blocks.WRITTEN_FORWARDS) followed
        inside, carrying; anything else called on a tensor (through ``__call__`` when it has hooks)."""
        Carried = rules.Carried
        d = self.direct.get(id(child)) if child is not None else None
        if d is None or child.__dict__.get("forward") is not d[0] or child._forward_hooks or \
                child._forward_pre_hooks or child._backward_hooks or child._backward_pre_hooks or \
                child._compiled_call_impl is not None:
            return child(cur.tensor() if type(cur) is Carried else cur)
        wrapped, name, own, rule, fwd = d
        if rule is None:
            cls = type(child)
            body = _Tracer._chain if _plain_sequential(cls) else _block_program(cls)
            if body is None:
                return wrapped(cur.tensor() if type(cur) is Carried else cur)
            if type(cur) is not Carried:
                carried = Carried.of(cur)
                if carried is None:
                    return wrapped(cur)
                cur = carried
            return self._nested(child, name, own, cur, body)
        if type(cur) is not Carried:
            carried = Carried.of(cur)
            if carried is None:
                return wrapped(cur)
            cur = carried
        return self._leaf(child, name, own, rule, fwd, cur)

    def _add(self, a, b):
        """``a + b`` as the tracer answers it: two carried shapes of one floating dtype and shape add to a
        carried shape (the field the widest of the two, as the binary rule merges it); otherwise the tensors
        are added under the torch function mode, as the block's forward would."""
        Carried = rules.Carried
        if type(a) is Carried and type(b) is Carried and a.shape == b.shape and a.dtype == b.dtype and \
                a.dtype.is_floating_point:
            return Carried(a.shape, a.dtype, rules.merge_rfs([a._cl_rf, b._cl_rf]) if len(a.shape) == 4 else None)
        return (a.tensor() if type(a) is Carried else a) + (b.tensor() if type(b) is Carried else b)

    def _open(self, name, module, own, shape) -> "_Record":
        """A module call's record, its parameters counted, pushed on the stack of open calls."""
        t, nt = self._count(own)
        rec = _Record(name, module, len(self.stack), shape, t, nt)
        self.recs.append(rec)
        self.stack.append(rec)
        return rec

    def _count(self, own) -> tuple[int, int]:
        """A module's (trainable, non-trainable) tensors not counted yet (each tensor counts at its first use)."""
        t = nt = 0
        counted = self.counted
        for pid, n, trainable in own:
            if pid not in counted:
                counted.add(pid)
                if trainable:
                    t += n
                else:
                    nt += n
        return t, nt

    def _nested(self, module, name, own, x, body):
        """:meth:`_call`'s path for a container answered by ``body(module, x)`` (:meth:`_chain` or a block's
        program, called ``body(tracer, module, x)``), on a carried shape."""
        import torch

        with torch._C.DisableTorchFunction():
            rec = self._open(name, module, own, x.shape)
        out = body(self, module, x)
        with torch._C.DisableTorchFunction():
            self.stack.pop()
            if type(out) is rules.Carried:
                rec.out, rec.rf = out.shape, out._cl_rf
            else:
                rec.out = out
                rec.rf = rules.rf_of(out) if isinstance(out, torch.Tensor) else None
        return out

    def _leaf(self, module, name, own, rule, forward, x):
        """:meth:`_call`'s rule path for a child of an nn.Sequential, on a carried shape (or, when the rule
        declines, the module's forward on the tensor it stands for)."""
        import torch

        with torch._C.DisableTorchFunction():
            rec = self._open(name, module, own, x.shape)
            out = rule(self, module, x)
            if out is not None:
                self.stack.pop()
                rec.out, rec.rf = out.shape, rules.rf_of(out)
                return out
        out = forward(x.tensor())
        with torch._C.DisableTorchFunction():
            self.stack.pop()
            rec.out = out
            rec.rf = rules.rf_of(out) if isinstance(out, torch.Tensor) else None
        return out

    def _call_lazy(self, module, name, *args, **kwargs):
        """A lazy module: counted and answered as its twin materialised from this input (one twin per
        module, so a module called twice counts its parameters once)."""
        import torch

        twin = self.twins.get(id(module))
        if twin is None:
            try:
                twin = _lazy_twin(module, args, kwargs)
            except (RuntimeError, ValueError, IndexError, TypeError, AttributeError) as e:
                first = next((a for a in args if isinstance(a, torch.Tensor)), None)
                where = f" on input {_shape_text(list(first.shape))}" if first is not None else ""
                raise self.error(f"module {name} ({type(module).__name__}){where} could not infer its parameters: "
                                 f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
            own = _owned(twin)
            self.all_owned.extend(own)
            self.twins[id(module)] = twin
            self.twin_owned[id(module)] = own
        at = len(self.recs)
        try:
            return self._call(twin, name, self.twin_owned[id(module)], rules.leaf_rule(twin), twin.forward,
                              *args, **kwargs)
        finally:
            if at < len(self.recs):  # the row shows the user's module; the checks read the twin's settings
                self.recs[at].module, self.recs[at].twin = module, twin

    def rows(self) -> list[Row]:
        import torch

        size, tensor = torch.Size, torch.Tensor
        rows = []
        append = rows.append
        for rec in self.recs:
            out, rf = rec.out, rec.rf
            if isinstance(out, size):
                out_shape = list(out)
            else:
                out_shape = _out_shape(out)
                if not isinstance(out, tensor):
                    rf = None
            if rf is not None and rf != GLOBAL:
                rf = {"size": [rf[0][0], rf[1][0]], "jump": [rf[0][1], rf[1][1]], "start": [rf[0][2], rf[1][2]]}
            m = rec.twin if rec.twin is not None else rec.module
            info = _module_info(m) if _has_info(type(m)) else {}
            append(Row(rec.name, type(rec.module).__name__, rec.depth,
                       list(rec.in_shape) if rec.in_shape is not None else None, out_shape, 0, 0, 0, rf, True,
                       (rec.trainable, rec.non_trainable, rec.macs), info))
        return rows

    def error(self, msg: str) -> ShapeError:
        """A ShapeError located at the module being called (its name, type and input shape)."""
        if self.stack:
            rec = self.stack[-1]
            shape = _shape_text(list(rec.in_shape)) if rec.in_shape is not None else "-"
            return ShapeError(f"module {rec.name} ({type(rec.module).__name__}) on input {shape}: {msg}")
        return ShapeError(f"the model's forward failed: {msg}")

    def add_macs(self, n: int) -> None:
        self.total_macs += n
        if self.stack:
            self.stack[-1].macs += n

    # -- dispatch -----------------------------------------------------------------------

    def dispatch(self, func, args, kwargs):
        import torch

        name = getattr(func, "__name__", "")
        if name in _PASSTHROUGH:
            return func(*args, **kwargs)
        if name in _MOVES and args and isinstance(args[0], torch.Tensor) and args[0].is_meta:
            return self._move(name, args, kwargs)
        if name in _FACTORIES and getattr(func, "__module__", "") == "torch" and \
                not any(isinstance(a, torch.Tensor) for a in (*args, *kwargs.values())):
            kwargs = {k: v for k, v in kwargs.items() if k not in ("generator", "pin_memory")}
            return self.fallback(func, args, {**kwargs, "device": "meta"})
        if not args and "input" in kwargs:  # F.conv2d(input=x, weight=w, ...): the input first, as the rules read it
            kwargs = dict(kwargs)
            args = (kwargs.pop("input"),)
        if name in _UNCOUNTED:
            where = self.stack[-1].name if self.stack else "the model's own forward"
            self.uncounted[(name, where)] = self.uncounted.get((name, where), 0) + 1
        rule = rules.OP_RULES.get(name)
        if rule is not None:
            a0 = args[0] if args else kwargs.get("tensors")
            # a real tensor (a parameter, a tensor made inside forward) gives a meta result as in fallback;
            # in-place rules only ever see meta tensors (the user's own are guarded below)
            if isinstance(a0, torch.Tensor) and (a0.is_meta or name not in _INPLACE_RULES) or \
                    (isinstance(a0, (list, tuple)) and a0):
                out = rule(self, args, kwargs)
                if out is not NotImplemented:
                    return out
        if name.endswith("_") and not name.startswith("__") or name in _INPLACE_DUNDER:
            a0 = args[0] if args else None
            if isinstance(a0, torch.Tensor) and not a0.is_meta:
                if id(a0) not in self.temps:
                    return a0  # never modify the user's tensors (e.g. num_batches_tracked += 1)
                if not any(isinstance(a, torch.Tensor) and a.is_meta for a in (*args, *kwargs.values())):
                    return self._real(func, args, kwargs)  # a tensor made inside forward: changed for real
        out = self.fallback(func, args, kwargs)
        count = rules.COUNTED_OPS.get(name)
        if count is not None:
            if name.startswith("conv") and isinstance(out, torch.Tensor) and 0 in out.shape[-(out.dim() - 1):]:
                raise self.error(f"{name} gives an empty output {list(out.shape)} (a spatial size below 1); use "
                                 f"less padding, a smaller kernel or dilation, or a larger input")
            self.add_macs(count(args, kwargs, out))
            if name == "multi_head_attention_forward":
                self.attention = True
        return out

    def _move(self, name, args, kwargs):
        """x.to(device), x.cpu(), x.to(other), x.to(device, dtype): the tensor stays on meta; only a dtype
        (given, or the other tensor's) is applied."""
        import torch

        x = args[0]
        dtype = kwargs.get("dtype")
        if name == "to":
            for a in args[1:]:
                if isinstance(a, torch.dtype):
                    dtype = a
                elif isinstance(a, torch.Tensor):
                    dtype = a.dtype
        if dtype is None or dtype == x.dtype:
            return x
        with torch._C.DisableTorchFunction():
            out = x.to(dtype=dtype)
        out._cl_rf = rules.rf_of(x)
        return out

    def _real(self, func, args, kwargs):
        try:
            return func(*args, **kwargs)
        except (RuntimeError, ValueError, IndexError, TypeError) as e:
            raise self.error(str(e).splitlines()[0] if str(e) else type(e).__name__) from None

    def fallback(self, func, args, kwargs):
        import torch
        from torch.utils._pytree import tree_flatten, tree_map

        if _meta_only(args, kwargs):  # nothing to convert (the common case): no pytree walk
            tensors = [a for a in args if isinstance(a, torch.Tensor)]
            for a in args:
                if isinstance(a, (list, tuple)):
                    tensors += [b for b in a if isinstance(b, torch.Tensor)]
        else:
            tensors = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        if any(not t.is_meta for t in tensors):
            args, kwargs = tree_map(lambda t: t.to("meta") if isinstance(t, torch.Tensor) and not t.is_meta else t,
                                    (args, kwargs))
        try:
            out = func(*args, **kwargs)
        except (RuntimeError, ValueError, IndexError, TypeError) as e:
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise self.error(msg) from None
        if isinstance(out, torch.Tensor) and not out.is_meta:
            self.temps[id(out)] = out  # made inside forward (torch.tensor(...)): in-place changes may run
        if isinstance(out, torch.Tensor) and out.is_meta and out.dim() == 4 and rules.rf_of(out) is None:
            ins = [t for t in tensors if t.dim() == 4 and t.shape[2:] == out.shape[2:] and t is not out]
            rf = rules.merge_rfs([rules.rf_of(t) for t in ins]) if ins else None
            if rf is not None:
                try:
                    out._cl_rf = rf
                except (AttributeError, RuntimeError):
                    pass
        return out


@functools.lru_cache(maxsize=None)
def _has_info(cls) -> bool:
    """Modules of this class have settings the checks read (:func:`_module_info`)."""
    import torch.nn as nn

    return issubclass(cls, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d))


def _module_info(module) -> dict:
    """A conv's or pool's settings, for the checks (``convlab.analyze.checks``)."""
    import torch.nn as nn

    if isinstance(module, nn.Conv2d):
        return {"kernel": module.kernel_size, "stride": module.stride, "padding": module.padding,
                "dilation": module.dilation, "groups": module.groups, "bias": module.bias is not None,
                "in_channels": module.in_channels}
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        pair = arith.pair
        return {"kernel": pair(module.kernel_size), "stride": pair(module.stride or module.kernel_size),
                "padding": pair(module.padding), "dilation": pair(getattr(module, "dilation", 1)),
                "ceil_mode": module.ceil_mode}
    return {}

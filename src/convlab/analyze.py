"""Summary of any model for an input shape: per-layer output shapes, parameters, MACs and receptive
fields, without computing a single activation.

Two paths give the same rows:

* a spec (text, file, zoo name) is planned by convlab's own arithmetic (``convlab.plan``);
* any ``nn.Module`` runs its forward on meta tensors under a torch function mode in which the
  known operations (conv, linear, pooling, norms, activations, elementwise arithmetic, cat,
  flatten, view/reshape) are answered by shape rules, and everything else runs for real on the
  meta device. The user's model is never moved, modified or switched between train and eval:
  in-place updates of its own tensors (BatchNorm's ``num_batches_tracked``) are skipped.

Counting rules (stated in every summary): non-trainable = frozen parameters + running statistics
(the Keras convention: BatchNorm over C channels = 2C trainable + 2C non-trainable); integer
counters are not parameters; shared parameters count once; MACs are the multiply-accumulates of
conv and linear layers, FLOPs = 2·MACs.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import gc
import io
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

from . import arith
from .errors import ConvlabError, ShapeError

RULES = (
    "non-trainable = frozen parameters + running statistics (BatchNorm running_mean/running_var; "
    "Keras convention: BN over 32 channels = 64 trainable + 64 non-trainable); integer counters are not parameters",
    "shared parameters are counted once, at their first use",
    "MACs = multiply-accumulates of conv and linear layers (C_out·C_in/groups·k_h·k_w·H_out·W_out; in·out), "
    "for the whole batch; FLOPs = 2·MACs; bias, norms, activations and additions are not counted",
    "receptive field: size and jump (cumulative stride) in input pixels, through every branch; "
    "'global' after global pooling, flatten or fc",
    "containers show the totals of the layers inside them",
)


@dataclass
class Row:
    name: str
    type: str
    depth: int
    input_shape: Optional[list]
    output_shape: Optional[list]
    trainable_params: int = 0
    non_trainable_params: int = 0
    macs: int = 0
    receptive_field: Optional[dict] = None
    leaf: bool = True
    # own counts (children excluded); the public fields above are totals over the row's subtree
    own: tuple = field(default=(0, 0, 0), repr=False)
    info: dict = field(default_factory=dict, repr=False)  # layer settings, for the checks

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("own")
        d.pop("info")
        return d


@dataclass
class Summary:
    """What :func:`summary` returns: rows in call order and totals; renders as table/markdown/csv/json."""

    model: str
    input_shape: tuple
    batch_size: int
    rows: list[Row]
    trainable_params: int
    non_trainable_params: int
    macs: int
    param_bytes: int
    activation_bytes: int
    output_shape: Optional[list] = None
    rules: tuple = RULES

    @property
    def params(self) -> int:
        return self.trainable_params + self.non_trainable_params

    @property
    def flops(self) -> int:
        return 2 * self.macs

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "input_shape": list(self.input_shape),
            "batch_size": self.batch_size,
            "output_shape": self.output_shape,
            "rows": [r.to_dict() for r in self.rows],
            "totals": {"trainable_params": self.trainable_params, "non_trainable_params": self.non_trainable_params,
                       "params": self.params, "macs": self.macs, "flops": self.flops,
                       "param_bytes": self.param_bytes, "activation_bytes": self.activation_bytes},
            "rules": list(self.rules),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def fold(self, depth: int | None) -> "Summary":
        """Rows deeper than ``depth`` folded into their parents (whose numbers already include them)."""
        if depth is None:
            return self
        rows = []
        for r in self.rows:
            if r.depth <= depth:
                rows.append(Row(**{**r.__dict__, "leaf": r.leaf or r.depth == depth}))
        return Summary(**{**self.__dict__, "rows": rows})

    # -- renderers ------------------------------------------------------------------------

    def _cells(self, r: Row) -> list[str]:
        return [r.name, r.type, _shape(r.output_shape), _int(r.trainable_params), _int(r.non_trainable_params),
                _int(r.macs), _rf(r.receptive_field)]

    HEAD = ["layer", "type", "output shape", "params", "non-trainable", "MACs", "RF size/jump"]

    def totals_lines(self) -> list[str]:
        return [
            f"input: {_shape([self.batch_size, *self.input_shape])}  output: {_shape(self.output_shape)}",
            f"params: {_int(self.params)} = {_int(self.trainable_params)} trainable + "
            f"{_int(self.non_trainable_params)} non-trainable",
            f"MACs: {_int(self.macs)} ({_si(self.macs)}); FLOPs = 2·MACs = {_si(self.flops)}",
            f"parameter memory: {_bytes(self.param_bytes)}; activations kept for backward "
            f"(leaf outputs, float32, batch {self.batch_size}): {_bytes(self.activation_bytes)}",
        ]

    def to_markdown(self) -> str:
        lines = ["| " + " | ".join(self.HEAD) + " |", "|" + "|".join(["---"] * len(self.HEAD)) + "|"]
        for r in self.rows:
            cells = self._cells(r)
            cells[0] = "&nbsp;" * 2 * r.depth + cells[0]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        lines.extend(f"- {t}" for t in self.totals_lines())
        lines.append("")
        lines.extend(f"- rule: {t}" for t in self.rules)
        return "\n".join(lines)

    def to_html(self) -> str:
        """A standalone HTML table (nested layers indented), with the totals and the counting rules."""
        import html as h

        head = "".join(f"<th>{h.escape(c)}</th>" for c in self.HEAD)
        body = []
        for r in self.rows:
            cells = self._cells(r)
            first = f'<td style="padding-left:{0.5 + 1.2 * r.depth}em">{h.escape(cells[0])}</td>'
            rest = "".join(f"<td>{h.escape(c)}</td>" for c in cells[1:])
            body.append(f"<tr{'' if r.leaf else ' style=font-weight:bold'}>{first}{rest}</tr>")
        notes = "".join(f"<li>{h.escape(t)}</li>" for t in self.totals_lines())
        rules = "".join(f"<li>{h.escape(t)}</li>" for t in self.rules)
        return (f"<table class=convlab-summary><caption>{h.escape(self.model)}</caption><tr>{head}</tr>"
                f"{''.join(body)}</table><ul>{notes}</ul><ul class=rules>{rules}</ul>")

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["name", "type", "depth", "output_shape", "trainable_params", "non_trainable_params", "macs",
                    "rf_size", "rf_jump"])
        for r in self.rows:
            rf = r.receptive_field if isinstance(r.receptive_field, dict) else {}
            size = r.receptive_field if r.receptive_field == GLOBAL else _pair_text(rf.get("size"))
            w.writerow([r.name, r.type, r.depth, "x".join(map(str, r.output_shape or [])), r.trainable_params,
                        r.non_trainable_params, r.macs, size, _pair_text(rf.get("jump"))])
        return buf.getvalue()

    def to_table(self):
        from rich import box
        from rich.table import Table

        t = Table(box=box.SIMPLE_HEAVY, title=f"{self.model}", title_justify="left", show_footer=False)
        for i, h in enumerate(self.HEAD):
            t.add_column(h, justify="right" if i >= 3 else "left", no_wrap=True)
        for r in self.rows:
            cells = self._cells(r)
            cells[0] = "  " * r.depth + cells[0]
            t.add_row(*cells, style=None if r.leaf else "bold")
        return t

    def render(self, console=None) -> None:
        from rich.console import Console

        if console is None:
            console = Console()
            if not console.is_terminal:
                console = Console(width=160)
        console.print(self.to_table())
        for line in self.totals_lines():
            console.print(line, highlight=False)
        console.print("[dim]" + "\n".join(f"rule: {t}" for t in self.rules) + "[/dim]", highlight=False)

    def __str__(self) -> str:
        from rich.console import Console

        console = Console(file=io.StringIO(), width=140, color_system=None)
        self.render(console)
        return console.file.getvalue()


def _int(v: int) -> str:
    return f"{v:,}"


def _si(v: float) -> str:
    for unit, f in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(v) >= f:
            return f"{v / f:.3f} {unit}"
    return str(v)


def _bytes(v: int) -> str:
    for unit, f in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if v >= f:
            return f"{v / f:.2f} {unit}"
    return f"{v} B"


def _shape(s) -> str:
    if s is None:
        return "-"
    if s and isinstance(s[0], list):
        return ", ".join(_shape(x) for x in s)
    return "[" + ", ".join(map(str, s)) + "]"


def _pair_text(v) -> str:
    if v is None:
        return ""
    return str(v[0]) if v[0] == v[1] else f"{v[0]}x{v[1]}"


def _rf(rf) -> str:
    if rf is None:
        return ""
    if rf == "global":
        return "global"
    return f"{_pair_text(rf['size'])}/{_pair_text(rf['jump'])}"


def _rf_dict(rf) -> Optional[dict]:
    if rf is None:
        return None
    return {"size": [rf[0][0], rf[1][0]], "jump": [rf[0][1], rf[1][1]], "start": [rf[0][2], rf[1][2]]}


def _aggregate(rows: list[Row]) -> None:
    """Fill each row's totals from its own counts and those of the rows nested under it."""
    stack: list[Row] = []
    for r in rows:
        while stack and stack[-1].depth >= r.depth:
            stack.pop()
        r.trainable_params, r.non_trainable_params, r.macs = r.own
        for parent in stack:
            parent.leaf = False
            parent.trainable_params += r.own[0]
            parent.non_trainable_params += r.own[1]
            parent.macs += r.own[2]
        stack.append(r)


# ---------------------------------------------------------------------------------------------
# spec path


def _summary_from_plan(p, batch_size: int, label: str) -> Summary:
    rows = []
    act = total_t = total_nt = macs = 0
    for node, depth in p.walk():
        if not node.reuse:
            total_t += node.trainable
            total_nt += node.non_trainable
            macs += node.macs * batch_size
        own = (0, 0, 0) if node.reuse else (node.trainable, node.non_trainable, node.macs * batch_size)
        row = Row(node.name, node.type, depth, [batch_size, *node.in_shape], [batch_size, *node.out_shape],
                  receptive_field=_rf_dict(node.rf) if node.rf is not None else "global", own=own,
                  info=dict(node.info))
        rows.append(row)
        if not node.children:
            act += math.prod(node.out_shape) * batch_size * 4
    _aggregate(rows)
    return Summary(label, tuple(p.input_shape), batch_size, rows, total_t, total_nt, macs,
                   (total_t + total_nt) * 4, act, [batch_size, *p.output_shape])


# ---------------------------------------------------------------------------------------------
# nn.Module path


@contextlib.contextmanager
def _gc_paused():
    """The analysis allocates many small objects and frees none of them in cycles: pausing the
    cyclic garbage collector meanwhile halves its time (it rescans torch's large heap otherwise)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def summary(model, input_shape=None, *, batch_size: int = 1, depth: int | None = None,
            num_classes: int | None = None) -> Summary:
    """Summarise a spec (text/file/:class:`Spec`), a zoo name or any ``nn.Module`` for an input
    shape (C, H, W). No activations are computed and the model is left exactly as it was.

    >>> s = summary("conv(32,3,p=1) bn relu", (3, 8, 8))
    >>> s.trainable_params, s.non_trainable_params
    (1024, 64)
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ShapeError(f"batch_size must be a positive integer, got {batch_size!r}")
    if depth is not None and (not isinstance(depth, int) or depth < 0):
        raise ShapeError(f"depth must be a non-negative integer, got {depth!r}")
    with _gc_paused():
        return _summary(model, input_shape, batch_size, depth, num_classes)


def _summary(model, input_shape, batch_size, depth, num_classes) -> Summary:
    import torch.nn as nn

    if isinstance(model, nn.Module):
        if input_shape is None:
            input_shape = getattr(model, "input_shape", None)
            if input_shape is None:
                raise ShapeError("input_shape=(C, H, W) is needed to summarise an nn.Module")
        return _summary_module(model, input_shape, batch_size).fold(depth)
    from .plan import plan
    from .resolve import resolve_spec

    spec, default_shape, label = resolve_spec(model)
    p = plan(spec, input_shape if input_shape is not None else default_shape, num_classes)
    return _summary_from_plan(p, batch_size, label).fold(depth)


def _summary_module(model, input_shape, batch_size: int) -> Summary:
    import torch

    from .plan import check_input_shape

    shape = check_input_shape(input_shape) if len(tuple(input_shape)) == 3 else tuple(int(v) for v in input_shape)
    tracer = _Tracer(model)
    x = torch.empty((batch_size, *shape), device="meta")
    x._cl_rf = ((1, 1, 0.0), (1, 1, 0.0)) if len(shape) == 3 else None
    out = tracer.run(x)
    rows = tracer.rows()
    _aggregate(rows)
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
    return Summary(type(model).__name__, shape, batch_size, rows, trainable, non_trainable, tracer.total_macs, pbytes,
                   act, _out_shape(out))


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


class _Tracer:
    """Runs a model's forward on meta tensors, answering known modules and ops with shape rules.

    Each module's ``forward`` is wrapped for the run (an instance attribute, removed afterwards) so
    that rows are recorded without torch's slower hook path; known leaf modules (conv, norms,
    activations, pooling, linear, flatten, dropout) are answered by a shape rule instead of their
    own forward. Other code runs under a torch function mode (``dispatch``).
    """

    def __init__(self, model):
        self.model = model
        self.recs: list[list] = []
        self.stack: list[list] = []
        self.total_macs = 0
        self.counted: set[int] = set()
        self.modules: list[tuple[str, object]] = [(n, m) for n, m in model.named_modules() if m is not model]
        root = model
        self.all_owned = [(id(p), p.numel(), p.requires_grad) for p in root._parameters.values() if p is not None]
        self.all_owned += [(id(b), b.numel(), False) for n, b in root._buffers.items()
                           if b is not None and n.startswith("running_") and b.is_floating_point()]

    def run(self, x):
        import functools

        import torch
        from torch.overrides import TorchFunctionMode

        tracer = self

        class Mode(TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                return tracer.dispatch(func, args, kwargs or {})

        patched = []
        try:
            for name, m in self.modules:
                own = [(id(p), p.numel(), p.requires_grad) for p in m._parameters.values() if p is not None]
                own += [(id(b), b.numel(), False) for n, b in m._buffers.items()
                        if b is not None and n.startswith("running_") and b.is_floating_point()]
                rule = _leaf_table().get(type(m))
                if rule is not None and isinstance(m, torch.nn.Conv2d) and m.padding_mode != "zeros":
                    rule = None
                self.all_owned.extend(own)
                had = "forward" in m.__dict__
                patched.append((m, had, m.__dict__.get("forward")))
                m.__dict__["forward"] = functools.partial(self._call, m, name, own, rule, m.forward)
            with Mode(), torch.no_grad():
                try:
                    return self.model(x)
                except ConvlabError:
                    raise
                except Exception as e:  # torch's own message, located at the innermost module
                    raise self._error(f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
        finally:
            for m, had, old in patched:
                if had:
                    m.__dict__["forward"] = old
                else:
                    del m.__dict__["forward"]

    def _call(self, module, name, own, rule, forward, *args, **kwargs):
        # the hot path: plain lists now, Row objects after the run (see rows())
        import torch

        with torch._C.DisableTorchFunction():  # bookkeeping reads plain attributes, untraced
            t = nt = 0
            counted = self.counted
            for pid, n, trainable in own:
                if pid not in counted:
                    counted.add(pid)
                    if trainable:
                        t += n
                    else:
                        nt += n
            first = args[0] if args and isinstance(args[0], torch.Tensor) else next(
                (a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)), None)
            rec = [name, module, len(self.stack), first.shape if first is not None else None, None, None, [t, nt, 0]]
            self.recs.append(rec)
            self.stack.append(rec)
            if rule is not None and first is not None and len(args) == 1 and not kwargs and first.is_meta:
                out = rule(self, module, first)
                if out is not None:
                    self.stack.pop()
                    rec[4], rec[5] = out.shape, _rf_of(out)
                    return out
        out = forward(*args, **kwargs)
        with torch._C.DisableTorchFunction():
            self.stack.pop()
            rec[4] = out
            rec[5] = _rf_of(out) if isinstance(out, torch.Tensor) else None
        return out

    def rows(self) -> list[Row]:
        import torch

        rows = []
        for name, module, depth, in_shape, out, rf, own in self.recs:
            if isinstance(out, torch.Size):
                out_shape = list(out)
            else:
                out_shape = _out_shape(out)
            if not isinstance(out, (torch.Size, torch.Tensor)):
                rf = None
            rows.append(Row(name, type(module).__name__, depth, list(in_shape) if in_shape is not None else None,
                            out_shape, receptive_field=GLOBAL if rf == GLOBAL else _rf_dict(rf), own=tuple(own),
                            info=_module_info(module)))
        return rows

    def _error(self, msg: str) -> ShapeError:
        if self.stack:
            name, module, _, in_shape = self.stack[-1][:4]
            shape = _shape(list(in_shape)) if in_shape is not None else "-"
            return ShapeError(f"module {name} ({type(module).__name__}) on input {shape}: {msg}")
        return ShapeError(f"the model's forward failed: {msg}")

    def add_macs(self, n: int) -> None:
        self.total_macs += n
        if self.stack:
            self.stack[-1][6][2] += n

    # -- dispatch -----------------------------------------------------------------------

    def dispatch(self, func, args, kwargs):
        import torch

        name = getattr(func, "__name__", "")
        if name in _PASSTHROUGH:
            return func(*args, **kwargs)
        rule = _RULES.get(name)
        if rule is not None:
            a0 = args[0] if args else kwargs.get("tensors")
            if (isinstance(a0, torch.Tensor) and a0.is_meta) or (isinstance(a0, (list, tuple)) and a0):
                out = rule(self, args, kwargs)
                if out is not NotImplemented:
                    return out
        if name.endswith("_") and not name.startswith("__") or name in _INPLACE_DUNDER:
            a0 = args[0] if args else None
            if isinstance(a0, torch.Tensor) and not a0.is_meta:
                return a0  # never modify the user's tensors (e.g. num_batches_tracked += 1)
        return self.fallback(func, args, kwargs)

    def fallback(self, func, args, kwargs):
        import torch
        from torch.utils._pytree import tree_flatten, tree_map

        if not kwargs and all(not isinstance(a, (torch.Tensor, list, tuple, dict)) or
                              (isinstance(a, torch.Tensor) and a.is_meta and a.dim() != 4) for a in args):
            try:
                return func(*args)  # e.g. x.dim(), x.size(1) on a meta tensor: nothing to convert
            except (RuntimeError, ValueError, IndexError, TypeError) as e:
                raise self._error(str(e).splitlines()[0] if str(e) else type(e).__name__) from None

        flat = tree_flatten((args, kwargs))[0]
        tensors = [t for t in flat if isinstance(t, torch.Tensor)]
        if any(not t.is_meta for t in tensors):
            args, kwargs = tree_map(lambda t: t.to("meta") if isinstance(t, torch.Tensor) and not t.is_meta else t,
                                    (args, kwargs))
        try:
            out = func(*args, **kwargs)
        except (RuntimeError, ValueError, IndexError, TypeError) as e:
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise self._error(msg) from None
        if isinstance(out, torch.Tensor) and out.is_meta and out.dim() == 4 and _rf_of(out) is None:
            ins = [t for t in tensors if t.dim() == 4 and t.shape[2:] == out.shape[2:] and t is not out]
            rf = _merge_rfs([_rf_of(t) for t in ins]) if ins else None
            if rf is not None:
                try:
                    out._cl_rf = rf
                except (AttributeError, RuntimeError):
                    pass
        return out


# queries that only read a meta tensor's metadata: answered by torch directly
_PASSTHROUGH = {"dim", "size", "numel", "__get__", "is_floating_point", "_set_grad_enabled", "is_contiguous",
                "element_size", "__len__", "ndimension", "nelement", "stride", "is_complex", "_has_compatible_shallow_copy_type"}

_INPLACE_DUNDER = {"__iadd__", "__isub__", "__imul__", "__itruediv__", "__setitem__"}


def _module_info(module) -> dict:
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


# ---------------------------------------------------------------------------------------------
# shape rules: each takes (tracer, args, kwargs) and returns meta tensors, or NotImplemented


def _meta(shape, like, rf=None):
    import torch

    t = torch.empty(tuple(shape), device="meta", dtype=like.dtype)
    t._cl_rf = rf
    return t


def _arg(args, kwargs, i, name, default=None):
    if len(args) > i:
        return args[i]
    return kwargs.get(name, default)


GLOBAL = "global"  # receptive field after global pooling, flatten or fc; None means unknown


def _rf_of(t):
    return getattr(t, "_cl_rf", None)


def _merge_rfs(rfs):
    """Field of a sum of branches: the widest; a global branch makes it global; unknown ones are skipped."""
    if GLOBAL in rfs:
        return GLOBAL
    known = [r for r in rfs if r is not None]
    return arith.rf_widest(known) if known else None


def _rf_step2(rf, k, s, p, d):
    return rf if rf is None or rf == GLOBAL else arith.rf_step_2d(rf, k, s, p, d)


def _conv_rule(tr, args, kwargs):
    x, w = args[0], _arg(args, kwargs, 1, "weight")
    if x.dim() != 4 or w is None or w.dim() != 4:
        return NotImplemented
    stride = arith.pair(_arg(args, kwargs, 3, "stride", 1))
    padding = _arg(args, kwargs, 4, "padding", 0)
    dilation = arith.pair(_arg(args, kwargs, 5, "dilation", 1))
    groups = _arg(args, kwargs, 6, "groups", 1)
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    if c != cg * groups:
        raise tr._error(f"expected {cg * groups} input channels (weight {list(w.shape)}, groups={groups}) but the "
                        f"input has {c}; make the layer before it output {cg * groups} channels, or set "
                        f"in_channels={c}")
    pad = arith.pad_before(padding, (kh, kw), dilation)
    try:
        if padding == "same":
            hw = (h, wd)
        else:  # a module's settings are valid ints already: skip arith's argument checks
            hw = (arith.conv1d_out(h, kh, stride[0], pad[0], dilation[0], validate=False),
                  arith.conv1d_out(wd, kw, stride[1], pad[1], dilation[1], validate=False))
    except ShapeError as e:
        raise tr._error(str(e)) from None
    tr.add_macs(n * arith.conv_macs(cg * groups, o, groups, (kh, kw), hw))
    return _meta((n, o, *hw), x, _rf_step2(_rf_of(x), (kh, kw), stride, pad, dilation))


def _linear_rule(tr, args, kwargs):
    x, w = args[0], _arg(args, kwargs, 1, "weight")
    if w is None or w.dim() != 2 or x.dim() < 1:
        return NotImplemented
    if x.shape[-1] != w.shape[1]:
        extra = ""
        if x.dim() > 2:
            extra = f"; the input is {x.dim()}-D {list(x.shape)}: flatten it first (→ {math.prod(x.shape[1:])})"
        raise tr._error(f"expected {w.shape[1]} input features but the input has {x.shape[-1]}; "
                        f"set in_features={x.shape[-1]}{extra}")
    tr.add_macs(arith.linear_macs(w.shape[1], w.shape[0], math.prod(x.shape[:-1])))
    return _meta((*x.shape[:-1], w.shape[0]), x, GLOBAL)


def _norm_rule(tr, args, kwargs):
    x = args[0]
    w = _arg(args, kwargs, 3, "weight")
    rm = _arg(args, kwargs, 1, "running_mean")
    ref = w if w is not None else rm
    if x.dim() < 2:
        return NotImplemented
    if ref is not None and hasattr(ref, "shape") and ref.dim() == 1 and ref.shape[0] != x.shape[1]:
        raise tr._error(f"expected {ref.shape[0]} channels but the input has {x.shape[1]}; "
                        f"set num_features={x.shape[1]}")
    return _meta(x.shape, x, _rf_of(x))


def _same_rule(tr, args, kwargs):
    x = args[0]
    return _meta(x.shape, x, _rf_of(x))


def _inplace_same_rule(tr, args, kwargs):
    return args[0]


def _pool_rule(tr, args, kwargs, avg=False):
    x = args[0]
    if x.dim() != 4:
        return NotImplemented
    k = arith.pair(_arg(args, kwargs, 1, "kernel_size"))
    s = _arg(args, kwargs, 2, "stride", None)
    s = k if s is None or s == [] or s == () else arith.pair(s)
    p = arith.pair(_arg(args, kwargs, 3, "padding", 0))
    if avg:
        d = (1, 1)
        ceil = _arg(args, kwargs, 4, "ceil_mode", False)
    else:
        d = arith.pair(_arg(args, kwargs, 4, "dilation", 1))
        ceil = _arg(args, kwargs, 5, "ceil_mode", False)
        if _arg(args, kwargs, 6, "return_indices", False):
            return NotImplemented
    try:
        hw = tuple(arith.pool1d_out(x.shape[2 + i], k[i], s[i], p[i], d[i], bool(ceil)) for i in range(2))
    except ShapeError as e:
        raise tr._error(str(e)) from None
    return _meta((*x.shape[:2], *hw), x, _rf_step2(_rf_of(x), k, s, p, d))


def _adaptive_rule(tr, args, kwargs):
    x = args[0]
    size = _arg(args, kwargs, 1, "output_size")
    if x.dim() != 4:
        return NotImplemented
    size = arith.pair(size)
    hw = tuple(x.shape[2 + i] if size[i] is None else size[i] for i in range(2))
    return _meta((*x.shape[:2], *hw), x, GLOBAL if hw == (1, 1) else None)


def _broadcast(shapes):
    nd = max(len(s) for s in shapes)
    out = []
    for i in range(nd):
        dims = {s[len(s) - nd + i] for s in shapes if len(s) - nd + i >= 0} - {1}
        if len(dims) > 1:
            return None
        out.append(dims.pop() if dims else 1)
    return out


def _binary_rule(tr, args, kwargs, inplace=False):
    import torch

    tensors = [a for a in args[:2] if isinstance(a, torch.Tensor)]
    if any(not t.is_meta for t in tensors) or kwargs.get("out") is not None:
        return NotImplemented
    shape = _broadcast([tuple(t.shape) for t in tensors])
    if shape is None:
        raise tr._error("cannot combine tensors of shapes " + " and ".join(str(list(t.shape)) for t in tensors)
                        + " (element-wise ops need equal or broadcastable shapes: for a residual add, project the "
                          "shortcut with a 1x1 conv of the right channels and stride)")
    rfs = [_rf_of(t) for t in tensors if t.dim() == 4 and len(shape) == 4 and tuple(t.shape[2:]) == tuple(shape[2:])]
    rf = _merge_rfs(rfs) if rfs else None
    if inplace:
        if list(args[0].shape) != shape:
            return NotImplemented
        args[0]._cl_rf = rf
        return args[0]
    return _meta(shape, tensors[0], rf)


def _flatten_rule(tr, args, kwargs):
    x = args[0]
    start = _arg(args, kwargs, 1, "start_dim", 0)
    end = _arg(args, kwargs, 2, "end_dim", -1)
    if not isinstance(start, int) or not isinstance(end, int) or x.dim() == 0:
        return NotImplemented
    nd = x.dim()
    start, end = start % nd, end % nd
    shape = (*x.shape[:start], math.prod(x.shape[start:end + 1]), *x.shape[end + 1:])
    return _meta(shape, x, GLOBAL if x.dim() == 4 and end >= 2 else None)


def _reshape_rule(tr, args, kwargs):
    x = args[0]
    shape = args[1:] if len(args) > 2 else (args[1] if len(args) > 1 else kwargs.get("shape"))
    if isinstance(shape, int):
        shape = (shape,)
    if shape is None or not all(isinstance(v, int) for v in shape):
        return NotImplemented
    shape = list(shape)
    total = math.prod(x.shape)
    if shape.count(-1) == 1:
        known = math.prod(v for v in shape if v != -1)
        if known == 0 or total % known:
            return NotImplemented
        shape[shape.index(-1)] = total // known
    if math.prod(shape) != total:
        raise tr._error(f"cannot view a tensor of shape {list(x.shape)} ({total} elements) as {shape}")
    rf = _rf_of(x) if len(shape) == 4 and shape[2:] == list(x.shape[2:]) else None
    return _meta(shape, x, rf)


def _cat_rule(tr, args, kwargs):
    import torch

    ts = _arg(args, kwargs, 0, "tensors")
    dim = _arg(args, kwargs, 1, "dim", 0)
    if not isinstance(ts, (list, tuple)) or not ts or not all(isinstance(t, torch.Tensor) and t.is_meta for t in ts):
        return NotImplemented
    nd = ts[0].dim()
    dim %= nd
    for t in ts[1:]:
        if t.dim() != nd or any(t.shape[i] != ts[0].shape[i] for i in range(nd) if i != dim):
            raise tr._error("cannot concatenate shapes " + ", ".join(str(list(t.shape)) for t in ts)
                            + f" along dim {dim}: the other dimensions must match")
    shape = list(ts[0].shape)
    shape[dim] = sum(t.shape[dim] for t in ts)
    rf = _merge_rfs([_rf_of(t) for t in ts]) if nd == 4 and dim != 2 and dim != 3 else None
    return _meta(shape, ts[0], rf)


def _getitem_rule(tr, args, kwargs):
    """x[..., a:b:s, c:d:t]: plain slices only; strided slices of H and W move the receptive field."""
    x, idx = args[0], args[1]
    idx = idx if isinstance(idx, tuple) else (idx,)
    if x.dim() != 4 or not all(isinstance(i, slice) or i is Ellipsis for i in idx) or list(idx).count(Ellipsis) > 1:
        return NotImplemented
    if Ellipsis in idx:
        k = idx.index(Ellipsis)
        idx = idx[:k] + (slice(None),) * (4 - len(idx) + 1) + idx[k + 1:]
    idx = idx + (slice(None),) * (4 - len(idx))
    if len(idx) != 4 or any(not all(v is None or isinstance(v, int) for v in (i.start, i.stop, i.step)) for i in idx):
        return NotImplemented
    ranges = [range(*i.indices(n)) for i, n in zip(idx, x.shape)]
    shape = [len(r) for r in ranges]
    rf = _rf_of(x)
    if rf not in (None, GLOBAL) and all(shape[2:]):
        rf = tuple((rf[d][0], rf[d][1] * ranges[2 + d].step, rf[d][2] + ranges[2 + d].start * rf[d][1])
                   for d in range(2))
    return _meta(shape, x, rf)


_RULES: dict[str, Any] = {}
for _n in ("conv2d",):
    _RULES[_n] = _conv_rule
_RULES["linear"] = _linear_rule
for _n in ("batch_norm", "instance_norm", "group_norm", "layer_norm"):
    _RULES[_n] = _same_rule
_RULES["batch_norm"] = _norm_rule
for _n in ("relu", "gelu", "sigmoid", "tanh", "silu", "hardswish", "hardsigmoid", "leaky_relu", "elu", "selu",
           "hardtanh", "relu6", "mish", "softplus", "dropout", "dropout2d", "alpha_dropout", "feature_alpha_dropout",
           "softmax", "log_softmax", "contiguous", "clone", "__neg__", "neg", "abs", "exp", "sqrt", "square",
           "_dropout", "prelu"):
    _RULES[_n] = _same_rule
for _n in ("relu_", "sigmoid_", "tanh_", "silu_", "hardswish_", "leaky_relu_", "elu_", "hardtanh_", "selu_"):
    _RULES[_n] = _inplace_same_rule
for _n in ("max_pool2d", "_max_pool2d", "max_pool2d_with_indices"):
    _RULES[_n] = _pool_rule
_RULES["avg_pool2d"] = lambda tr, a, k: _pool_rule(tr, a, k, avg=True)
_RULES["adaptive_avg_pool2d"] = _adaptive_rule
for _n in ("add", "__add__", "__radd__", "sub", "__sub__", "__rsub__", "mul", "__mul__", "__rmul__", "div",
           "__truediv__", "__rtruediv__", "maximum", "minimum"):
    _RULES[_n] = _binary_rule
for _n in ("add_", "__iadd__", "mul_", "__imul__", "sub_", "__isub__", "div_", "__itruediv__"):
    _RULES[_n] = lambda tr, a, k: _binary_rule(tr, a, k, inplace=True)
_RULES["flatten"] = _flatten_rule
for _n in ("view", "reshape"):
    _RULES[_n] = _reshape_rule
_RULES["cat"] = _cat_rule
_RULES["__getitem__"] = _getitem_rule
_RULES["concat"] = _cat_rule


# ---------------------------------------------------------------------------------------------
# leaf modules answered without running their forward: (tracer, module, input) -> meta output


def _leaf_conv(tr, m, x):
    return _conv_rule(tr, (x, m.weight, None, m.stride, m.padding, m.dilation, m.groups), {})


def _leaf_linear(tr, m, x):
    return _linear_rule(tr, (x, m.weight), {})


def _leaf_bn(tr, m, x):
    if x.dim() < 2:
        return None
    if x.shape[1] != m.num_features:
        raise tr._error(f"expected {m.num_features} channels but the input has {x.shape[1]}; "
                        f"set num_features={x.shape[1]}")
    return _meta(x.shape, x, _rf_of(x))


def _leaf_same(tr, m, x):
    return _meta(x.shape, x, _rf_of(x))


def _leaf_maxpool(tr, m, x):
    if m.return_indices:
        return None
    return _pool_rule(tr, (x, m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode), {})


def _leaf_avgpool(tr, m, x):
    return _pool_rule(tr, (x, m.kernel_size, m.stride, m.padding, m.ceil_mode), {}, avg=True)


def _leaf_adaptive(tr, m, x):
    return _adaptive_rule(tr, (x, m.output_size), {})


def _leaf_flatten(tr, m, x):
    return _flatten_rule(tr, (x, m.start_dim, m.end_dim), {})


@functools.lru_cache(maxsize=None)
def _leaf_table() -> dict:
    """Leaf module type -> rule; built on first use, so importing this module does not import torch."""
    import torch.nn as nn

    from .nn.blocks import GlobalAvgPool
    from .nn.pool import MaxPool2d

    table = {nn.Conv2d: _leaf_conv, nn.Linear: _leaf_linear, nn.BatchNorm2d: _leaf_bn, nn.BatchNorm1d: _leaf_bn,
             nn.MaxPool2d: _leaf_maxpool, nn.AvgPool2d: _leaf_avgpool, nn.AdaptiveAvgPool2d: _leaf_adaptive,
             GlobalAvgPool: _leaf_adaptive, nn.Flatten: _leaf_flatten, MaxPool2d: _leaf_maxpool}
    for cls in (nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Hardswish, nn.Hardsigmoid, nn.LeakyReLU,
                nn.ELU, nn.Mish, nn.Dropout, nn.Dropout2d, nn.Identity):
        table[cls] = _leaf_same
    return table




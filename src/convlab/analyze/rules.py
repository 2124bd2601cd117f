"""Shape rules for the meta-device tracer: the output of a known operation or leaf module from its
input's shape and settings, with the MACs counted and the receptive field carried along.

Two tables, each written once: :data:`OP_RULES` by torch function name, each rule taking
``(tracer, args, kwargs)``; :func:`leaf_rule` by leaf module type, each taking ``(tracer, module,
input)`` and answering without running the module's forward. A rule returns a fresh meta tensor
(its field in ``_cl_rf``), or ``NotImplemented`` (an op rule) / ``None`` (a leaf rule) to let the
operation run for real on the meta device. Every size comes from ``convlab.arith``.

The tracer passed in provides ``error(message) -> ShapeError`` (located at the current module) and
``add_macs(n)``. This module does not import torch until a rule runs.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable

from .. import arith
from ..errors import ShapeError
from .rows import GLOBAL


class Carried:
    """A leaf rule's output inside an ``nn.Sequential`` of known layers (the tracer's fast path): its shape,
    dtype and receptive field, made a meta tensor only when something other than a leaf rule takes it.
    ``src``: the tensor it stands for, when it is the chain's own input (handed on unchanged)."""

    __slots__ = ("shape", "dtype", "_cl_rf", "src")
    is_meta = True

    def __init__(self, shape, dtype, rf, src=None):
        self.shape, self.dtype, self._cl_rf, self.src = shape, dtype, rf, src

    def dim(self) -> int:
        return len(self.shape)

    def tensor(self):
        if self.src is not None:
            return self.src
        import torch

        with torch._C.DisableTorchFunction():  # made by convlab, not traced
            t = torch.empty(self.shape, device="meta", dtype=self.dtype)
        t._cl_rf = self._cl_rf
        return t

    @staticmethod
    def of(t):
        """A meta tensor as a Carried standing for it; None for anything else (a real tensor, a tuple)."""
        import torch

        with torch._C.DisableTorchFunction():
            if isinstance(t, torch.Tensor) and t.is_meta:
                return Carried(t.shape, t.dtype, getattr(t, "_cl_rf", None), t)
        return None


def _meta(shape, like, rf=None):
    if type(like) is Carried:  # inside a chain of known layers: no tensor yet
        import torch

        return Carried(torch.Size(shape), like.dtype, rf)
    import torch

    t = torch.empty(tuple(shape), device="meta", dtype=like.dtype)
    t._cl_rf = rf
    return t


def _arg(args, kwargs, i, name, default=None):
    if len(args) > i:
        return args[i]
    return kwargs.get(name, default)


def rf_of(t):
    """The receptive field a rule attached to ``t`` (None: unknown)."""
    return getattr(t, "_cl_rf", None)


def merge_rfs(rfs):
    """Field of a sum of branches: the widest; a global branch makes it global; unknown ones are skipped."""
    if GLOBAL in rfs:
        return GLOBAL
    known = [r for r in rfs if r is not None]
    return arith.rf_widest(known) if known else None


def _rf_step2(rf, k, s, p, d):
    return rf if rf is None or rf == GLOBAL else arith.rf_step_2d(rf, k, s, p, d)


def _bn_mismatch(tr, expected: int, got: int) -> ShapeError:
    """The one BatchNorm channel-mismatch message (functional batch_norm and BatchNorm modules alike)."""
    return tr.error(f"expected {expected} channels but the input has {got}; set num_features={got}")


# -- by op name: (tracer, args, kwargs) -> meta tensor or NotImplemented ---------------------

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
        raise tr.error(f"expected {cg * groups} input channels (weight {list(w.shape)}, groups={groups}) but the "
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
        raise tr.error(str(e)) from None
    tr.add_macs(n * arith.conv_macs(cg * groups, o, groups, (kh, kw), hw))
    return _meta((n, o, *hw), x, _rf_step2(rf_of(x), (kh, kw), stride, pad, dilation))


def _linear_rule(tr, args, kwargs):
    x, w = args[0], _arg(args, kwargs, 1, "weight")
    if w is None or w.dim() != 2 or x.dim() < 1:
        return NotImplemented
    if x.shape[-1] != w.shape[1]:
        extra = ""
        if x.dim() > 2:
            extra = f"; the input is {x.dim()}-D {list(x.shape)}: flatten it first (→ {math.prod(x.shape[1:])})"
        raise tr.error(f"expected {w.shape[1]} input features but the input has {x.shape[-1]}; "
                       f"set in_features={x.shape[-1]}{extra}")
    tr.add_macs(arith.linear_macs(w.shape[1], w.shape[0], math.prod(x.shape[:-1])))
    return _meta((*x.shape[:-1], w.shape[0]), x, GLOBAL)


def _batch_norm_rule(tr, args, kwargs):
    x = args[0]
    w = _arg(args, kwargs, 3, "weight")
    rm = _arg(args, kwargs, 1, "running_mean")
    ref = w if w is not None else rm
    if x.dim() < 2:
        return NotImplemented
    if ref is not None and hasattr(ref, "shape") and ref.dim() == 1 and ref.shape[0] != x.shape[1]:
        raise _bn_mismatch(tr, ref.shape[0], x.shape[1])
    return _meta(x.shape, x, rf_of(x))


def _group_norm_rule(tr, args, kwargs):
    """F.group_norm(x, num_groups, weight, bias): torch's checks (channels divisible by the groups, one
    weight and bias per channel), the shape unchanged."""
    x = args[0]
    g = _arg(args, kwargs, 1, "num_groups")
    if x.dim() < 2 or isinstance(g, bool) or not isinstance(g, int) or g < 1:
        return NotImplemented  # torch's own message
    c = x.shape[1]
    fits = [d for d in range(1, c + 1) if c % d == 0] if c % g else []
    for t in (_arg(args, kwargs, 2, "weight"), _arg(args, kwargs, 3, "bias")):
        if t is not None and hasattr(t, "numel") and t.numel() != c:
            also = f" and num_groups in {fits}" if fits else ""
            raise tr.error(f"expected {t.numel()} channels (num_channels={t.numel()}) but the input has {c}; "
                           f"set num_channels={c}{also}")
    if fits:
        raise tr.error(f"{g} groups do not divide the input's {c} channels; use num_groups in {fits}")
    return _meta(x.shape, x, rf_of(x))


def _layer_norm_rule(tr, args, kwargs):
    """F.layer_norm(x, normalized_shape, weight, bias): the last dimensions must be normalized_shape (as torch
    checks), the shape unchanged."""
    x = args[0]
    ns = _arg(args, kwargs, 1, "normalized_shape")
    ns = (ns,) if isinstance(ns, int) and not isinstance(ns, bool) else ns
    if not isinstance(ns, (tuple, list)) or not ns or not all(isinstance(v, int) for v in ns):
        return NotImplemented
    ns = tuple(ns)
    tail = tuple(x.shape[x.dim() - len(ns):]) if len(ns) <= x.dim() else None
    if tail != ns:
        fix = f"; set normalized_shape={list(x.shape[-len(ns):])}" if len(ns) <= x.dim() else ""
        raise tr.error(f"layer norm over the last {len(ns)} dimension{'s' if len(ns) > 1 else ''} {list(ns)} but "
                       f"the input is {list(x.shape)}{fix} (for C×H×W maps in channels-first order, "
                       f"nn.GroupNorm(1, C) normalises each sample over C, H and W)")
    for t in (_arg(args, kwargs, 2, "weight"), _arg(args, kwargs, 3, "bias")):
        if t is not None and hasattr(t, "shape") and tuple(t.shape) != ns:
            return NotImplemented
    return _meta(x.shape, x, rf_of(x))


def _same_rule(tr, args, kwargs):
    x = args[0]
    return _meta(x.shape, x, rf_of(x))


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
        raise tr.error(str(e)) from None
    return _meta((*x.shape[:2], *hw), x, _rf_step2(rf_of(x), k, s, p, d))


def _avg_pool_rule(tr, args, kwargs):
    return _pool_rule(tr, args, kwargs, avg=True)


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
    if kwargs.get("out") is not None or len(args) > 2 or (inplace and any(not t.is_meta for t in tensors)):
        return NotImplemented
    if len(args) == 2 and not isinstance(args[1], (torch.Tensor, int, float, bool)):
        return NotImplemented
    if any(t.dtype == torch.bool for t in tensors):  # torch's own rules and messages (no bool subtraction)
        return NotImplemented
    shape = _broadcast([tuple(t.shape) for t in tensors])
    if shape is None:
        raise tr.error("cannot combine tensors of shapes " + " and ".join(str(list(t.shape)) for t in tensors)
                       + " (element-wise ops need equal or broadcastable shapes: for a residual add, project the "
                         "shortcut with a 1x1 conv of the right channels and stride)")
    rfs = [rf_of(t) for t in tensors if t.dim() == 4 and len(shape) == 4 and tuple(t.shape[2:]) == tuple(shape[2:])]
    rf = merge_rfs(rfs) if rfs else None
    if inplace:
        if list(args[0].shape) != shape:
            return NotImplemented
        args[0]._cl_rf = rf
        return args[0]
    # the result's dtype by torch's type promotion (an int mask times a float map is float)
    dtype = torch.result_type(args[0], args[1]) if len(args) == 2 else tensors[0].dtype
    out = torch.empty(tuple(shape), device="meta", dtype=dtype)
    out._cl_rf = rf
    return out


def _inplace_binary_rule(tr, args, kwargs):
    return _binary_rule(tr, args, kwargs, inplace=True)


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
        raise tr.error(f"cannot view a tensor of shape {list(x.shape)} ({total} elements) as {shape}")
    rf = rf_of(x) if len(shape) == 4 and shape[2:] == list(x.shape[2:]) else None
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
            raise tr.error("cannot concatenate shapes " + ", ".join(str(list(t.shape)) for t in ts)
                           + f" along dim {dim}: the other dimensions must match")
    shape = list(ts[0].shape)
    shape[dim] = sum(t.shape[dim] for t in ts)
    rf = merge_rfs([rf_of(t) for t in ts]) if nd == 4 and dim != 2 and dim != 3 else None
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
    rf = rf_of(x)
    if rf not in (None, GLOBAL) and all(shape[2:]):
        rf = tuple((rf[d][0], rf[d][1] * ranges[2 + d].step, rf[d][2] + ranges[2 + d].start * rf[d][1])
                   for d in range(2))
    return _meta(shape, x, rf)


def _reduce_rule(tr, args, kwargs):
    """x.mean(dim, keepdim), sum, amax, amin: the reduced shape (torch's meta path for these runs its
    Python reference implementation, ~1 ms a call); a 4-D result over the same map keeps the field."""
    x = args[0]
    dim = _arg(args, kwargs, 1, "dim", None)
    keep = _arg(args, kwargs, 2, "keepdim", False)
    dtype = kwargs.get("dtype")
    if len(args) > 3 or not isinstance(keep, bool) or (dtype is None and not x.is_floating_point()) or x.dim() == 0:
        return NotImplemented
    nd = x.dim()
    if dim is None:
        dims = set(range(nd))
    elif isinstance(dim, int):
        dims = {dim % nd} if -nd <= dim < nd else None
    elif isinstance(dim, (tuple, list)) and dim and all(isinstance(d, int) and -nd <= d < nd for d in dim):
        dims = {d % nd for d in dim}
        if len(dims) != len(dim):  # a dimension twice: torch's own error
            return NotImplemented
    else:
        dims = None
    if dims is None:
        return NotImplemented
    shape = [1 if i in dims else n for i, n in enumerate(x.shape)] if keep else \
        [n for i, n in enumerate(x.shape) if i not in dims]
    rf = rf_of(x) if nd == 4 and len(shape) == 4 and shape[2:] == list(x.shape[2:]) else None
    out = _meta(shape, x, rf)
    return out if dtype is None else out.to(dtype)


def _var_rule(tr, args, kwargs):
    """var/std(x, dim, *, correction|unbiased, keepdim) and their _mean pairs: the reduced shape(s)."""
    if len(args) > 2 or set(kwargs) - {"dim", "keepdim", "unbiased", "correction"}:
        return NotImplemented
    out = _reduce_rule(tr, args[:2], {k: v for k, v in kwargs.items() if k in ("dim", "keepdim")})
    return out


def _var_mean_rule(tr, args, kwargs):
    out = _var_rule(tr, args, kwargs)
    if out is NotImplemented:
        return out
    return out, _meta(out.shape, out, rf_of(out))


def _clamp_rule(tr, args, kwargs):
    """clamp/clip with number bounds (torch's meta run of these is its Python reference, ~1.7 ms)."""
    import torch

    if any(isinstance(a, torch.Tensor) for a in (*args[1:], *kwargs.values())) or "out" in kwargs:
        return NotImplemented
    return _same_rule(tr, args, kwargs)


def _pad_rule(tr, args, kwargs):
    """F.pad(x, pad, mode='constant', value): each padded dimension grows by its two pads (from the last
    dimension backwards); other modes, negative sizes and odd pad lists go to torch (its own checks)."""
    x = args[0]
    pad = _arg(args, kwargs, 1, "pad")
    mode = _arg(args, kwargs, 2, "mode", "constant")
    if mode != "constant" or not isinstance(pad, (list, tuple)) or len(pad) % 2 or len(pad) // 2 > x.dim() or \
            not all(isinstance(v, int) and not isinstance(v, bool) for v in pad):
        return NotImplemented
    shape = list(x.shape)
    for i in range(len(pad) // 2):
        shape[-1 - i] += pad[2 * i] + pad[2 * i + 1]
    if any(v < 0 for v in shape) or (shape != list(x.shape) and 0 in shape):
        return NotImplemented
    rf = rf_of(x)
    if rf not in (None, GLOBAL) and x.dim() == 4:  # padding before the map moves its first pixel's field
        before = (pad[2] if len(pad) >= 4 else 0, pad[0])
        rf = tuple((rf[d][0], rf[d][1], rf[d][2] - before[d] * rf[d][1]) for d in range(2))
    return _meta(shape, x, rf)


def _matmul_rule(tr, args, kwargs):
    """matmul / ``@`` of two tensors of at least 2 dimensions and one dtype: (..., n, m) @ (..., m, p) ->
    (broadcast ..., n, p), as torch computes it (its meta run is a Python kernel, 25-45 us a call). 1-D
    operands, mixed dtypes and anything that does not fit go to torch (its own checks and messages). The
    tracer has counted the call for the footnote (not counted in MACs) before the rule runs."""
    import torch

    if len(args) != 2 or kwargs:
        return NotImplemented
    a, b = args
    if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor):
        return NotImplemented
    if a.dtype != b.dtype:  # torch does not promote here (torch's meta kernels let some of these pass)
        raise tr.error(f"a matrix product of {str(a.dtype).replace('torch.', '')} and "
                       f"{str(b.dtype).replace('torch.', '')} tensors: torch needs one dtype; convert one "
                       f"with .to({a.dtype if a.is_floating_point() else b.dtype})")
    if a.dim() < 2 or b.dim() < 2 or a.dtype == torch.bool or a.shape[-1] != b.shape[-2]:
        return NotImplemented
    batch = _broadcast([tuple(a.shape[:-2]), tuple(b.shape[:-2])])
    if batch is None:
        return NotImplemented
    return _meta((*batch, a.shape[-2], b.shape[-1]), a, None)


def _bmm_rule(tr, args, kwargs):
    """torch.bmm: two 3-D tensors with one batch size (torch refuses broadcasting here)."""
    if len(args) != 2 or kwargs or not hasattr(args[1], "dim"):
        return NotImplemented
    if args[0].dim() != 3 or args[1].dim() != 3 or args[0].shape[0] != args[1].shape[0]:
        if args[0].dtype == args[1].dtype:
            return NotImplemented  # torch's own message
    return _matmul_rule(tr, args, kwargs)


_INTERP_DIMS = {"linear": 3, "bilinear": 4, "bicubic": 4, "trilinear": 5}


def _interpolate_rule(tr, args, kwargs):
    """F.interpolate with linear/bilinear/bicubic/trilinear modes: torch computes the output size the same
    way for every mode (from size or scale_factor), so the shape is asked of its fast nearest kernel
    (the meta run of the interpolating modes is its Python reference: ~10 ms a call)."""
    import torch.nn.functional as F

    x = args[0]
    mode = _arg(args, kwargs, 3, "mode", "nearest")
    if len(args) > 1 or _INTERP_DIMS.get(mode) != x.dim() or (kwargs.get("antialias") and x.dim() != 4):
        return NotImplemented
    out = F.interpolate(x, size=kwargs.get("size"), scale_factor=kwargs.get("scale_factor"), mode="nearest",
                        recompute_scale_factor=kwargs.get("recompute_scale_factor"))
    return _meta(out.shape, x, None)


OP_RULES: dict[str, Callable[[Any, tuple, dict], Any]] = {
    "var": _var_rule, "std": _var_rule, "var_mean": _var_mean_rule, "std_mean": _var_mean_rule,
    "clamp": _clamp_rule, "clip": _clamp_rule, "clamp_min": _clamp_rule, "clamp_max": _clamp_rule,
    "clamp_": _inplace_same_rule, "clip_": _inplace_same_rule, "hardsigmoid_": _inplace_same_rule,
    "relu6_": _inplace_same_rule,
    "pad": _pad_rule,
    "matmul": _matmul_rule, "__matmul__": _matmul_rule, "bmm": _bmm_rule,
    "interpolate": _interpolate_rule,
    # reductions over given dimensions
    "mean": _reduce_rule, "sum": _reduce_rule, "amax": _reduce_rule, "amin": _reduce_rule,
    # layers
    "conv2d": _conv_rule,
    "linear": _linear_rule,
    "batch_norm": _batch_norm_rule,
    "instance_norm": _same_rule, "group_norm": _group_norm_rule, "layer_norm": _layer_norm_rule,
    # shape-preserving: activations, dropout, softmax, copies, unary arithmetic
    "relu": _same_rule, "gelu": _same_rule, "sigmoid": _same_rule, "tanh": _same_rule, "silu": _same_rule,
    "hardswish": _same_rule, "hardsigmoid": _same_rule, "leaky_relu": _same_rule, "elu": _same_rule,
    "selu": _same_rule, "hardtanh": _same_rule, "relu6": _same_rule, "mish": _same_rule, "softplus": _same_rule,
    "prelu": _same_rule,
    "dropout": _same_rule, "dropout2d": _same_rule, "alpha_dropout": _same_rule,
    "feature_alpha_dropout": _same_rule, "_dropout": _same_rule,
    "softmax": _same_rule, "log_softmax": _same_rule, "contiguous": _same_rule, "clone": _same_rule,
    "__neg__": _same_rule, "neg": _same_rule, "abs": _same_rule, "exp": _same_rule, "sqrt": _same_rule,
    "square": _same_rule,
    # in-place activations: the tensor itself
    "relu_": _inplace_same_rule, "sigmoid_": _inplace_same_rule, "tanh_": _inplace_same_rule,
    "silu_": _inplace_same_rule, "hardswish_": _inplace_same_rule, "leaky_relu_": _inplace_same_rule,
    "elu_": _inplace_same_rule, "hardtanh_": _inplace_same_rule, "selu_": _inplace_same_rule,
    # pooling
    "max_pool2d": _pool_rule, "_max_pool2d": _pool_rule, "max_pool2d_with_indices": _pool_rule,
    "avg_pool2d": _avg_pool_rule,
    "adaptive_avg_pool2d": _adaptive_rule,
    # element-wise binary ops (broadcasting), then their in-place forms
    "add": _binary_rule, "__add__": _binary_rule, "__radd__": _binary_rule,
    "sub": _binary_rule, "__sub__": _binary_rule, "__rsub__": _binary_rule,
    "mul": _binary_rule, "__mul__": _binary_rule, "__rmul__": _binary_rule,
    "div": _binary_rule, "__truediv__": _binary_rule, "__rtruediv__": _binary_rule,
    "maximum": _binary_rule, "minimum": _binary_rule,
    "add_": _inplace_binary_rule, "__iadd__": _inplace_binary_rule, "mul_": _inplace_binary_rule,
    "__imul__": _inplace_binary_rule, "sub_": _inplace_binary_rule, "__isub__": _inplace_binary_rule,
    "div_": _inplace_binary_rule, "__itruediv__": _inplace_binary_rule,
    # reshaping, joining, slicing
    "flatten": _flatten_rule,
    "view": _reshape_rule, "reshape": _reshape_rule,
    "cat": _cat_rule, "concat": _cat_rule,
    "__getitem__": _getitem_rule,
}


# -- counted after running on meta: (args, kwargs, output) -> MACs ---------------------------
# torch's meta kernels give these ops' output shapes exactly; convlab only counts their work.

def _conv_nd_macs(args, kwargs, out, transposed=False):
    """C_out·C_in/groups·k… per output position (per input position when transposed), times the batch:
    the weight's size times the positions it is applied at, as torch's FlopCounterMode counts it."""
    import torch

    x, w = args[0], _arg(args, kwargs, 1, "weight")
    if not isinstance(out, torch.Tensor) or not isinstance(w, torch.Tensor) or w.dim() < 3:
        return 0
    n = x.shape[0] if x.dim() == w.dim() else 1  # unbatched (C, L...) input: one sample
    spatial = (x if transposed else out).shape[-(w.dim() - 2):]
    return n * math.prod(w.shape) * math.prod(spatial)


def _conv_t_macs(args, kwargs, out):
    return _conv_nd_macs(args, kwargs, out, transposed=True)


@functools.lru_cache(maxsize=None)
def _mha_signature():
    import inspect

    import torch.nn.functional as F

    return inspect.signature(F.multi_head_attention_forward)


def _mha_macs(args, kwargs, out):
    """F.multi_head_attention_forward (nn.MultiheadAttention): the q, k, v and output projections
    (linear layers) plus the two attention matmuls, q·kᵀ and weights·v (L·S·E each per sample)."""
    b = _mha_signature().bind(*args, **kwargs)
    b.apply_defaults()
    a = b.arguments
    q, k = a["query"], a["key"]
    n = q.shape[1] if q.dim() == 3 else 1
    tgt, src, e = q.shape[0], k.shape[0], q.shape[-1]
    if a["use_separate_proj_weight"]:
        macs = sum(rows * math.prod(w.shape) for rows, w in ((tgt, a["q_proj_weight"]), (src, a["k_proj_weight"]),
                                                               (src, a["v_proj_weight"])))
    else:
        macs = (tgt + 2 * src) * e * e
    macs *= n
    attended = a["static_k"].shape[1] if a["static_k"] is not None else src + (a["bias_k"] is not None)
    attended += bool(a["add_zero_attn"])
    macs += 2 * n * tgt * attended * e
    macs += n * tgt * math.prod(a["out_proj_weight"].shape)
    return macs


def _mha_rule(tr, args, kwargs):
    """F.multi_head_attention_forward answered by shape (torch's meta run decomposes every projection
    in Python): the attended output (L, N, E) and the weights (N, L, S), per head when not averaged."""
    b = _mha_signature().bind(*args, **kwargs)
    b.apply_defaults()
    a = b.arguments
    q, k, v = a["query"], a["key"], a["value"]
    e, heads = a["embed_dim_to_check"], a["num_heads"]
    if q.dim() not in (2, 3) or k.dim() != q.dim() or v.dim() != q.dim() or a["out_proj_weight"] is None:
        return NotImplemented
    if q.shape[-1] != e or e % heads or k.shape[:-1] != v.shape[:-1] or (q.dim() == 3 and k.shape[1] != q.shape[1]):
        return NotImplemented  # torch's own checks and message
    tr.add_macs(_mha_macs(args, kwargs, None))
    tr.attention = True
    out = _meta((*q.shape[:-1], a["out_proj_weight"].shape[0]), q)
    if not a["need_weights"]:
        return out, None
    attended = a["static_k"].shape[1] if a["static_k"] is not None else k.shape[0] + (a["bias_k"] is not None)
    attended += bool(a["add_zero_attn"])
    lead = (q.shape[1],) if q.dim() == 3 else ()
    per_head = () if a["average_attn_weights"] else (heads,)
    return out, _meta((*lead, *per_head, q.shape[0], attended), q)


OP_RULES["multi_head_attention_forward"] = _mha_rule


COUNTED_OPS: dict[str, Callable[[tuple, dict, Any], int]] = {
    "conv1d": _conv_nd_macs, "conv2d": _conv_nd_macs, "conv3d": _conv_nd_macs,
    "conv_transpose1d": _conv_t_macs, "conv_transpose2d": _conv_t_macs, "conv_transpose3d": _conv_t_macs,
    "multi_head_attention_forward": _mha_macs,
}

ATTENTION_RULE = ("attention (nn.MultiheadAttention): MACs = its q, k, v and output projections (linear) "
                  "+ the matmuls q·kᵀ and weights·v (L·S·E each per sample)")


# -- by leaf module type: (tracer, module, input) -> meta tensor or None -----------------------

def _leaf_conv(tr, m, x):
    return _conv_rule(tr, (x, m.weight, None, m.stride, m.padding, m.dilation, m.groups), {})


def _leaf_linear(tr, m, x):
    return _linear_rule(tr, (x, m.weight), {})


def _leaf_bn(tr, m, x):
    if x.dim() < 2:
        return None
    if x.shape[1] != m.num_features:
        raise _bn_mismatch(tr, m.num_features, x.shape[1])
    return _meta(x.shape, x, rf_of(x))


def _leaf_same(tr, m, x):
    return _meta(x.shape, x, rf_of(x))


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

    from ..nn.blocks import GlobalAvgPool
    from ..nn.pool import MaxPool2d

    same = (nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Hardswish, nn.Hardsigmoid, nn.LeakyReLU,
            nn.ELU, nn.Mish, nn.Dropout, nn.Dropout2d, nn.Identity)
    return {nn.Conv2d: _leaf_conv, nn.Linear: _leaf_linear, nn.BatchNorm2d: _leaf_bn, nn.BatchNorm1d: _leaf_bn,
            nn.MaxPool2d: _leaf_maxpool, nn.AvgPool2d: _leaf_avgpool, nn.AdaptiveAvgPool2d: _leaf_adaptive,
            GlobalAvgPool: _leaf_adaptive, nn.Flatten: _leaf_flatten, MaxPool2d: _leaf_maxpool,
            **dict.fromkeys(same, _leaf_same)}


def leaf_rule(module):
    """The rule that answers ``module`` without its forward, or None (its forward runs, traced).

    By exact type, so subclasses with their own forward are traced; a conv that pads other than with
    zeros runs its own forward too."""
    rule = _leaf_table().get(type(module))
    if rule is _leaf_conv and module.padding_mode != "zeros":
        return None
    return rule

"""Convolution arithmetic: output sizes, explanations with the numbers, an inverse solver, and
receptive fields.

This is the one place in convlab where these formulas live; the spec builder, the analyser and
every error message call it, so they cannot drift apart. The rules are PyTorch's:

    conv / pool (floor):  out = floor((in + 2p - d(k-1) - 1) / s) + 1
    pool with ceil_mode:  out = ceil((in + 2p - d(k-1) - 1) / s) + 1, less one if the last window
                          would start beyond the input and its left padding
    transposed conv:      out = (in - 1)s - 2p + d(k-1) + output_padding + 1

Every function takes an int or an (h, w) pair for each argument and answers in the same form.
Invalid arguments raise :class:`~convlab.errors.ShapeError` with the numbers and a fix; no function
ever returns a size below 1.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Iterable, Sequence, Union

from .errors import ShapeError

Size = Union[int, tuple[int, int]]

__all__ = [
    "conv_out", "pool_out", "conv_transpose_out", "same_padding",
    "explain_conv", "explain_pool", "explain_conv_transpose", "Explanation", "DimExplanation",
    "solve", "Solution", "receptive_field", "RFStep", "ChainStep", "parse_chain", "explain_chain",
    "pair", "conv1d_out", "pool1d_out", "conv_transpose1d_out", "conv_macs", "linear_macs",
]

_AXES = ("H", "W")


def pair(v) -> tuple:
    """An int-or-pair setting as an (h, w) pair: 3 -> (3, 3); (3, 5) -> (3, 5); a 1-sequence (3,) -> (3, 3).

    The one int-or-pair helper: the planner, the tracer's rules, the builder and the scratch ops use it.
    """
    if isinstance(v, (tuple, list)):
        if len(v) == 2:
            return tuple(v)
        if len(v) == 1:
            return (v[0], v[0])
        raise ShapeError(f"expected an int or an (h, w) pair, got {v!r}")
    return (v, v)


def conv_macs(c_in: int, c_out: int, groups: int, kernel, out_hw) -> int:
    """Multiply-accumulates of one conv per sample: C_out·(C_in/groups)·k_h·k_w·H_out·W_out (any number of
    spatial dimensions: ``kernel`` and ``out_hw`` are sequences of the same length)."""
    n = c_out * (c_in // groups)
    for v in (*kernel, *out_hw):
        n *= v
    return n


def linear_macs(in_features: int, out_features: int, rows: int = 1) -> int:
    """Multiply-accumulates of a linear layer over ``rows`` input vectors: rows·in·out."""
    return rows * in_features * out_features


def _as_pairs(**named) -> tuple[bool, dict[str, tuple]]:
    """Broadcast int-or-pair arguments to per-dimension tuples; True if any was a pair."""
    paired = False
    out = {}
    for name, value in named.items():
        if isinstance(value, (tuple, list)):
            if len(value) != 2:
                raise ShapeError(f"{name} must be an int or an (h, w) pair, got {value!r}")
            paired = True
    ndim = 2 if paired else 1
    for name, value in named.items():
        if isinstance(value, (tuple, list)):
            out[name] = tuple(value)
        else:
            out[name] = (value,) * ndim
    return paired, out


def _check_int(name: str, value, minimum: int, op: str) -> None:
    from .limits import MAX_INT, _short

    if isinstance(value, bool) or not isinstance(value, int):
        raise ShapeError(f"{op}: {name} must be an integer, got {str(value)[:40]!r}")
    if value > MAX_INT:
        raise ShapeError(f"{op}: {name} is {_short(value)}, beyond convlab's limit of {MAX_INT:,} (2**31 - 1)")
    if value < minimum:
        hint = {"size": "the input must be at least 1 pixel", "kernel": "kernels are at least 1",
                "stride": "stride 1 keeps every position", "dilation": "dilation 1 is a dense kernel",
                "padding": "padding counts rows added on each side"}.get(name, "")
        raise ShapeError(f"{op}: {name} must be >= {minimum}, got {value}" + (f" ({hint})" if hint else ""))


def _eff(k: int, d: int) -> int:
    """Effective kernel extent of a dilated kernel: d(k-1) + 1."""
    return d * (k - 1) + 1


# --------------------------------------------------------------------------------------------
# one dimension


def conv1d_out(size: int, k: int, s: int = 1, p: int = 0, d: int = 1, op: str = "conv", validate: bool = True) -> int:
    """Output size of a convolution along one dimension; ``validate=False`` skips the argument checks for
    callers whose settings are valid integers already (the planner, a module's own settings)."""
    if validate:
        for name, v, lo in (("size", size, 1), ("kernel", k, 1), ("stride", s, 1), ("padding", p, 0),
                            ("dilation", d, 1)):
            _check_int(name, v, lo, op)
    ek = _eff(k, d)
    if size + 2 * p < ek:
        need = -(-(ek - size) // 2)
        raise ShapeError(
            f"{op}: kernel {k}" + (f" (dilation {d}: spans {ek})" if d > 1 else "")
            + f" does not fit the padded input {size} + 2·{p} = {size + 2 * p}; "
            f"use padding >= {need}, a smaller kernel, or less downsampling before this layer")
    return (size + 2 * p - ek) // s + 1


def pool1d_out(size: int, k: int, s: int, p: int = 0, d: int = 1, ceil_mode: bool = False, op: str = "pool") -> int:
    """Output size of max/avg pooling along one dimension (PyTorch's floor and ceil_mode rules)."""
    for name, v, lo in (("size", size, 1), ("kernel", k, 1), ("stride", s, 1), ("padding", p, 0),
                        ("dilation", d, 1)):
        _check_int(name, v, lo, op)
    if p > k // 2:
        raise ShapeError(f"{op}: padding {p} is more than half the kernel {k} (PyTorch allows at most "
                         f"{k // 2}); use padding <= {k // 2} or a kernel >= {2 * p}")
    ek = _eff(k, d)
    span = size + 2 * p - ek
    out = (span + (s - 1 if ceil_mode else 0)) // s + 1  # floor division, as PyTorch's div_rtn
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    if out < 1:
        raise ShapeError(
            f"{op}: window {k}" + (f" (dilation {d}: spans {ek})" if d > 1 else "")
            + f" does not fit the padded input {size} + 2·{p} = {size + 2 * p}; "
            f"use a window <= {size + 2 * p}" + ("" if ceil_mode else " (or ceil_mode=True)")
            + " or remove an earlier downsampling")
    return out


def conv_transpose1d_out(size: int, k: int, s: int = 1, p: int = 0, d: int = 1, op_pad: int = 0,
                         op: str = "convT") -> int:
    """Output size of a transposed convolution along one dimension."""
    for name, v, lo in (("size", size, 1), ("kernel", k, 1), ("stride", s, 1), ("padding", p, 0),
                        ("dilation", d, 1), ("output_padding", op_pad, 0)):
        _check_int(name, v, lo, op)
    if op_pad >= s and op_pad >= d:
        raise ShapeError(f"{op}: output_padding {op_pad} must be smaller than the stride {s} or the "
                         f"dilation {d}; use output_padding <= {max(s, d) - 1}")
    out = (size - 1) * s - 2 * p + d * (k - 1) + op_pad + 1
    if out < 1:
        raise ShapeError(f"{op}: output size (({size} − 1)·{s} − 2·{p} + {d}·({k} − 1) + {op_pad} + 1) = "
                         f"{out} is below 1; use padding <= {((size - 1) * s + d * (k - 1) + op_pad) // 2}")
    return out


def _pack(paired: bool, values: Sequence):
    return tuple(values) if paired else values[0]


def conv_out(size: Size, kernel: Size, stride: Size = 1, padding: Size | str = 0, dilation: Size = 1) -> Size:
    """Output size of a convolution (``nn.Conv1d/2d``). ``padding`` may be ``"same"`` or ``"valid"``.

    >>> conv_out(28, 3, stride=2, padding=1)
    14
    >>> conv_out((8, 8), (3, 5), stride=(3, 4), padding=(0, 1))
    (2, 2)
    """
    if isinstance(padding, str):
        return explain_conv(size, kernel, stride, padding, dilation).output
    paired, a = _as_pairs(size=size, kernel=kernel, stride=stride, padding=padding, dilation=dilation)
    return _pack(paired, [conv1d_out(a["size"][i], a["kernel"][i], a["stride"][i], a["padding"][i], a["dilation"][i])
                          for i in range(len(a["size"]))])


def _resolve_padding(padding, kernel, stride, dilation) -> tuple[object, list]:
    """Turn 'same'/'valid' into numbers: (padding for _as_pairs, per-dim (lo, hi) for odd 'same' totals)."""
    if not isinstance(padding, str):
        return padding, []
    if padding == "valid":
        return 0, []
    if padding != "same":
        raise ShapeError(f"padding must be an int, a pair, 'same' or 'valid', got {padding!r}")
    paired, a = _as_pairs(kernel=kernel, stride=stride, dilation=dilation)
    pads, asym = [], []
    for k, s, d in zip(a["kernel"], a["stride"], a["dilation"]):
        _check_int("kernel", k, 1, "conv")
        _check_int("dilation", d, 1, "conv")
        if s != 1:
            raise ShapeError(f"padding='same' needs stride 1 (PyTorch's rule), got stride {s}; "
                             f"use an explicit padding, e.g. padding={(_eff(k, d) - 1) // 2}")
        pad = same_padding(k, d)
        pads.append(pad if isinstance(pad, int) else pad[0])
        asym.append(pad if isinstance(pad, tuple) else None)
    return (tuple(pads) if paired else pads[0]), asym


def same_padding(kernel: int, dilation: int = 1) -> int | tuple[int, int]:
    """Padding that keeps the size at stride 1: d(k-1)/2, or a (before, after) pair when d(k-1) is odd
    (PyTorch puts the extra row after)."""
    total = _eff(kernel, dilation) - 1
    return total // 2 if total % 2 == 0 else (total // 2, total - total // 2)


def pad_before(padding, kernel, dilation=1) -> tuple[int, int]:
    """Rows and columns of padding before the input, with 'same' and 'valid' resolved as PyTorch does."""
    if padding == "valid":
        return (0, 0)
    if padding == "same":
        pads = (same_padding(k, d) for k, d in zip(pair(kernel), pair(dilation)))
        return tuple(p if isinstance(p, int) else p[0] for p in pads)
    return pair(padding)


def pool_out(size: Size, kernel: Size, stride: Size | None = None, padding: Size = 0, dilation: Size = 1,
             ceil_mode: bool = False) -> Size:
    """Output size of max/avg pooling (``nn.MaxPool2d`` rules; stride defaults to the kernel).

    >>> pool_out(5, 2, ceil_mode=True)
    3
    """
    stride = kernel if stride is None else stride
    paired, a = _as_pairs(size=size, kernel=kernel, stride=stride, padding=padding, dilation=dilation)
    outs = [pool1d_out(a["size"][i], a["kernel"][i], a["stride"][i], a["padding"][i], a["dilation"][i], ceil_mode)
            for i in range(len(a["size"]))]
    return _pack(paired, outs)


def conv_transpose_out(size: Size, kernel: Size, stride: Size = 1, padding: Size = 0, dilation: Size = 1,
                       output_padding: Size = 0) -> Size:
    """Output size of a transposed convolution (``nn.ConvTranspose2d``).

    >>> conv_transpose_out(7, 3, stride=2, padding=1, output_padding=1)
    14
    """
    paired, a = _as_pairs(size=size, kernel=kernel, stride=stride, padding=padding, dilation=dilation,
                          output_padding=output_padding)
    outs = [conv_transpose1d_out(a["size"][i], a["kernel"][i], a["stride"][i], a["padding"][i], a["dilation"][i],
                    a["output_padding"][i]) for i in range(len(a["size"]))]
    return _pack(paired, outs)


# --------------------------------------------------------------------------------------------
# explanations


@dataclass(frozen=True)
class DimExplanation:
    """How one spatial dimension's output size comes about."""

    axis: str
    input: int
    kernel: int
    stride: int
    padding: int
    dilation: int
    output: int
    formula: str
    substituted: str
    steps: tuple[str, ...]
    remainder: int = 0      # rows of the padded input after the last window (padding included)
    dropped: int = 0        # real input rows the last window leaves unread
    fix: str | None = None  # how to read every row, when some are dropped
    ceil_mode: bool = False
    output_padding: int = 0


@dataclass(frozen=True)
class Explanation:
    """The output size of one layer, with the formula, the numbers and every step."""

    op: str
    dims: tuple[DimExplanation, ...]
    output: Size

    @property
    def formula(self) -> str:
        return self.dims[0].formula

    @property
    def dropped(self) -> Size:
        return _pack(len(self.dims) > 1, [d.dropped for d in self.dims])

    def to_dict(self) -> dict:
        return {
            "op": self.op,
            "output": list(self.output) if isinstance(self.output, tuple) else self.output,
            "formula": self.formula,
            "steps": [s for d in self.dims for s in ([f"[{d.axis}]"] if len(self.dims) > 1 else []) + [d.substituted, *d.steps]],
            "dropped": list(self.dropped) if isinstance(self.dropped, tuple) else self.dropped,
            "dims": [asdict(d) for d in self.dims],
        }

    def __str__(self) -> str:
        lines = [f"{self.op}: {self.formula}"]
        for d in self.dims:
            tag = f"{d.axis}: " if len(self.dims) > 1 else ""
            lines.append(f"  {tag}{d.substituted}")
            lines.extend(f"  {' ' * len(tag)}  {s}" for s in d.steps)
            lines.append(f"  {' ' * len(tag)}= {d.output}")
            if d.dropped:
                lines.append(f"  {' ' * len(tag)}note: the last window stops {d.dropped} input row(s) short of the "
                             f"edge; they are never read. {d.fix or ''}".rstrip())
            elif d.remainder:
                lines.append(f"  {' ' * len(tag)}note: the last window skips {d.remainder} row(s) of padding only; "
                             f"every input row is read.")
        out = self.output
        lines.append(f"output: {out[0]}×{out[1]}" if isinstance(out, tuple) else f"output: {out}")
        return "\n".join(lines)


_CONV_FORMULA = "out = floor((in + 2·p − d·(k − 1) − 1) / s) + 1"
_POOL_CEIL_FORMULA = ("out = ceil((in + 2·p − d·(k − 1) − 1) / s) + 1, "
                      "less 1 if the last window would start beyond in + p")
_CONVT_FORMULA = "out = (in − 1)·s − 2·p + d·(k − 1) + output_padding + 1"


def _explain_window(axis: str, size, k, s, p, d, out, ceil_mode: bool, pool: bool) -> DimExplanation:
    ek = _eff(k, d)
    span = size + 2 * p - ek
    substituted = (f"{'ceil' if ceil_mode else 'floor'}(({size} + 2·{p} − {d}·({k} − 1) − 1) / {s}) + 1")
    steps = [f"{size} + {2 * p} − {d * (k - 1)} − 1 = {span}"]
    if ceil_mode:
        raw = -(-span // s)
        steps.append(f"{span} / {s} = {span / s:g} → ceil {raw}")
        steps.append(f"{raw} + 1 = {raw + 1}")
        if raw + 1 != out:
            steps.append(f"the last window would start at {raw * s} ≥ {size} + {p}: drop it → {out}")
    else:
        steps.append(f"{span} / {s} = {span / s:g}" + (f" → floor {span // s}" if span % s else ""))
        steps.append(f"{span // s} + 1 = {out}")
    remainder = 0 if ceil_mode else span % s
    dropped = max(0, remainder - p)
    fix = None
    if dropped:
        options = []
        for p2 in range(p + 1, p + s + 1):
            if pool and p2 > k // 2:
                break
            r2 = (size + 2 * p2 - ek) % s
            if max(0, r2 - p2) == 0:
                options.append(f"padding={p2} reads them (output {(size + 2 * p2 - ek) // s + 1})")
                break
        if pool:
            options.append(f"ceil_mode=True keeps a partial last window (output {pool1d_out(size, k, s, p, d, True)})")
        if options:
            fix = "Fix: " + "; or ".join(options) + "."
    return DimExplanation(axis=axis, input=size, kernel=k, stride=s, padding=p, dilation=d, output=out,
                          formula=_POOL_CEIL_FORMULA if ceil_mode else _CONV_FORMULA, substituted=substituted,
                          steps=tuple(steps), remainder=remainder, dropped=dropped, fix=fix, ceil_mode=ceil_mode)


def _axes(n: int) -> tuple[str, ...]:
    return _AXES if n == 2 else ("size",)


def explain_conv(size: Size, kernel: Size, stride: Size = 1, padding: Size | str = 0, dilation: Size = 1) -> Explanation:
    """Explain a convolution's output size: formula, numbers, steps, and rows left unread."""
    padding, asym = _resolve_padding(padding, kernel, stride, dilation)
    paired, a = _as_pairs(size=size, kernel=kernel, stride=stride, padding=padding, dilation=dilation)
    dims = []
    for i, axis in enumerate(_axes(len(a["size"]))):
        n, k, s, p, d = (a[x][i] for x in ("size", "kernel", "stride", "padding", "dilation"))
        if asym and asym[i % len(asym)]:  # 'same' with an odd total: PyTorch pads one more row after
            lo, hi = asym[i % len(asym)]
            _check_int("size", n, 1, "conv")
            dims.append(DimExplanation(axis=axis, input=n, kernel=k, stride=1, padding=lo, dilation=d, output=n,
                                       formula="'same': out = in (stride 1)",
                                       substituted=f"padding {lo} before and {hi} after keeps {n}", steps=()))
            continue
        out = conv1d_out(n, k, s, p, d)
        dims.append(_explain_window(axis, n, k, s, p, d, out, False, pool=False))
    return Explanation("conv", tuple(dims), _pack(paired, [x.output for x in dims]))


def explain_pool(size: Size, kernel: Size, stride: Size | None = None, padding: Size = 0, dilation: Size = 1,
                 ceil_mode: bool = False) -> Explanation:
    """Explain a pooling layer's output size (PyTorch's floor or ceil rule)."""
    stride = kernel if stride is None else stride
    out = pool_out(size, kernel, stride, padding, dilation, ceil_mode)
    paired, a = _as_pairs(size=size, kernel=kernel, stride=stride, padding=padding, dilation=dilation)
    outs = out if paired else (out,)
    dims = tuple(_explain_window(axis, a["size"][i], a["kernel"][i], a["stride"][i], a["padding"][i],
                                 a["dilation"][i], outs[i], ceil_mode, pool=True)
                 for i, axis in enumerate(_axes(len(a["size"]))))
    return Explanation("pool", dims, out)


def explain_conv_transpose(size: Size, kernel: Size, stride: Size = 1, padding: Size = 0, dilation: Size = 1,
                           output_padding: Size = 0) -> Explanation:
    """Explain a transposed convolution's output size."""
    out = conv_transpose_out(size, kernel, stride, padding, dilation, output_padding)
    paired, a = _as_pairs(size=size, kernel=kernel, stride=stride, padding=padding, dilation=dilation,
                          output_padding=output_padding)
    outs = out if paired else (out,)
    dims = []
    for i, axis in enumerate(_axes(len(a["size"]))):
        n, k, s, p, d, op = (a[x][i] for x in ("size", "kernel", "stride", "padding", "dilation", "output_padding"))
        steps = (f"({n} − 1)·{s} = {(n - 1) * s}",
                 f"{(n - 1) * s} − {2 * p} + {d * (k - 1)} + {op} + 1 = {outs[i]}")
        dims.append(DimExplanation(axis=axis, input=n, kernel=k, stride=s, padding=p, dilation=d, output=outs[i],
                                   formula=_CONVT_FORMULA, substituted=f"({n} − 1)·{s} − 2·{p} + {d}·({k} − 1) + {op} + 1",
                                   steps=steps, output_padding=op))
    return Explanation("convT", tuple(dims), out)


# --------------------------------------------------------------------------------------------
# inverse solver


@dataclass(frozen=True, order=True)
class Solution:
    """One (kernel, stride, padding, dilation) that maps ``in_size`` to ``out_size``."""

    kernel: int
    stride: int
    padding: int
    dilation: int
    remainder: int  # padded rows after the last window
    dropped: int    # real input rows never read

    @property
    def exact(self) -> bool:
        return self.dropped == 0

    @property
    def same_style(self) -> bool:
        """Symmetric padding that centres the kernel: p = (d(k-1)) // 2."""
        return self.padding == (_eff(self.kernel, self.dilation) - 1) // 2

    def to_dict(self) -> dict:
        return {**asdict(self), "exact": self.exact, "same_style": self.same_style}

    def __str__(self) -> str:
        d = f",d={self.dilation}" if self.dilation != 1 else ""
        return f"k={self.kernel},s={self.stride},p={self.padding}{d}"


def solve(in_size: int, out_size: int, kernels: Iterable[int] = range(1, 8), strides: Iterable[int] = range(1, 5),
          dilations: Iterable[int] = range(1, 4), paddings: Iterable[int] | None = None) -> list[Solution]:  # noqa: C901
    """Every (kernel, stride, padding, dilation) within bounds that maps ``in_size`` to ``out_size``.

    Paddings range over 0..d(k-1)//2 + 1 unless given. Solutions that read every input row come
    first, then those with centring ("same"-style) padding, then smaller dilation, stride, kernel.

    >>> [str(s) for s in solve(28, 14)][:2]
    ['k=2,s=2,p=0', 'k=3,s=2,p=1']
    """
    from .limits import MAX_SOLUTIONS, MAX_SOLVE_COMBINATIONS

    _check_int("size", in_size, 1, "solve")
    _check_int("size", out_size, 1, "solve")
    lists = {}
    for name, values, lo in (("kernel", kernels, 1), ("stride", strides, 1), ("dilation", dilations, 1),
                             ("padding", paddings, 0)):
        if values is None:
            continue
        if isinstance(values, range) and len(values) > MAX_SOLVE_COMBINATIONS:
            raise ShapeError(f"solve: {len(values):,} {name}s to try, beyond convlab's limit of "
                             f"{MAX_SOLVE_COMBINATIONS:,}; give a narrower range")
        values = list(values)
        for v in values:
            _check_int(name, v, lo, "solve")
        lists[name] = sorted(set(values))
    combos = len(lists["kernel"]) * len(lists["stride"]) * len(lists["dilation"])
    if combos > MAX_SOLVE_COMBINATIONS:
        raise ShapeError(f"solve: {combos:,} (kernel, stride, dilation) combinations to try, beyond convlab's limit "
                         f"of {MAX_SOLVE_COMBINATIONS:,}; give fewer kernels, strides or dilations")
    found = []
    for d in lists["dilation"]:
        for k in lists["kernel"]:
            ek = _eff(k, d)
            top = (ek - 1) // 2 + 1  # the default paddings: 0..d(k-1)//2 + 1
            for s in lists["stride"]:
                # (in + 2p - ek) // s + 1 == out  <=>  (out-1)s <= in + 2p - ek <= (out-1)s + s-1, with in + 2p >= ek:
                # p in [ceil(((out-1)s + ek - in) / 2), floor(((out-1)s + s-1 + ek - in) / 2)] — closed form
                lo = max(0, -(-((out_size - 1) * s + ek - in_size) // 2))
                hi = ((out_size - 1) * s + s - 1 + ek - in_size) // 2
                if "padding" in lists:
                    pads = [p for p in lists["padding"] if lo <= p <= hi]
                else:
                    pads = range(lo, min(hi, top) + 1)
                if len(found) + len(pads) > MAX_SOLUTIONS:
                    raise ShapeError(f"solve: more than {MAX_SOLUTIONS:,} settings map {in_size} to {out_size}; "
                                     f"give fewer kernels, strides, dilations or paddings")
                for p in pads:
                    r = (in_size + 2 * p - ek) % s
                    found.append(Solution(k, s, p, d, r, max(0, r - p)))
    found.sort(key=lambda x: (x.dropped > 0, not x.same_style, x.dilation, x.stride, x.kernel, x.padding))
    return found


# --------------------------------------------------------------------------------------------
# receptive field


@dataclass(frozen=True)
class RFStep:
    """Receptive field after one layer: its size in input pixels, the jump (distance in input pixels
    between neighbouring outputs, i.e. the cumulative stride) and the start (centre of the first
    output's field, in input pixel coordinates)."""

    size: Size
    jump: Size
    start: float | tuple[float, float]


def _rf_step(prev: tuple[int, int, float], k: int, s: int, p: int, d: int) -> tuple[int, int, float]:
    size, jump, start = prev
    ek = _eff(k, d)
    return size + (ek - 1) * jump, jump * s, start + ((ek - 1) / 2 - p) * jump


def rf_step_2d(rf, kernel, stride, padding, dilation):
    """One layer's effect on a (H, W) pair of (size, jump, start) fields; ints or (h, w) pairs."""
    # written out (no generators): the planner calls this for every conv and pool of a spec
    k = kernel if isinstance(kernel, (tuple, list)) else (kernel, kernel)
    s = stride if isinstance(stride, (tuple, list)) else (stride, stride)
    p = padding if isinstance(padding, (tuple, list)) else (padding, padding)
    d = dilation if isinstance(dilation, (tuple, list)) else (dilation, dilation)
    (size0, jump0, start0), (size1, jump1, start1) = rf
    ek0, ek1 = d[0] * (k[0] - 1), d[1] * (k[1] - 1)  # the effective extent less one
    return ((size0 + ek0 * jump0, jump0 * s[0], start0 + (ek0 / 2 - p[0]) * jump0),
            (size1 + ek1 * jump1, jump1 * s[1], start1 + (ek1 / 2 - p[1]) * jump1))


def rf_widest(fields) -> tuple:
    """Field of a sum of branches: per dimension, the branch that sees most."""
    fields = list(fields)
    out = fields[0]
    for f in fields[1:]:
        out = tuple(out[i] if out[i][0] >= f[i][0] else f[i] for i in range(2))
    return out


def receptive_field(layers: Iterable) -> list[RFStep]:
    """Receptive field after each step of ``layers``: each a (kernel, stride, padding, dilation)
    tuple (stride, padding, dilation optional) or a dict with those keys; ints or (h, w) pairs.

    >>> [r.size for r in receptive_field([(3, 1), (3, 1), (2, 2)])]
    [3, 5, 6]
    """
    form = "each layer a (kernel, stride, padding, dilation) tuple or a dict with those keys, e.g. [(3, 1), (2, 2)]"
    if isinstance(layers, (str, bytes)) or not isinstance(layers, Iterable):
        raise ShapeError(f"receptive_field takes a list of layers, {form}; got {type(layers).__name__} {layers!r}")
    out: list[RFStep] = []
    state: list[tuple[int, int, float]] | None = None
    paired_any = False
    for i, layer in enumerate(layers):
        if isinstance(layer, dict):
            k, s, p, d = (layer.get("kernel", layer.get("k")), layer.get("stride", layer.get("s", 1)),
                          layer.get("padding", layer.get("p", 0)), layer.get("dilation", layer.get("d", 1)))
        elif isinstance(layer, (tuple, list)) and 1 <= len(layer) <= 4:
            vals = tuple(layer) + (1, 0, 1)[len(layer) - 1:]
            k, s, p, d = vals[:4]
        else:
            raise ShapeError(f"receptive_field: layer {i} is {layer!r}; {form}")
        paired, a = _as_pairs(kernel=k, stride=s, padding=p, dilation=d)
        for name, minimum in (("kernel", 1), ("stride", 1), ("padding", 0), ("dilation", 1)):
            for v in a[name]:
                _check_int(name, v, minimum, f"receptive_field layer {i} {layer!r}")
        paired_any = paired_any or paired
        n = 2 if paired_any else 1
        if state is None:
            state = [(1, 1, 0.0)] * n
        elif len(state) < n:
            state = state * n
        state = [_rf_step(state[i], a["kernel"][i % len(a["kernel"])], a["stride"][i % len(a["stride"])],
                          a["padding"][i % len(a["padding"])], a["dilation"][i % len(a["dilation"])])
                 for i in range(n)]
        out.append(RFStep(_pack(n == 2, [x[0] for x in state]), _pack(n == 2, [x[1] for x in state]),
                          _pack(n == 2, [x[2] for x in state])))
    return out


# --------------------------------------------------------------------------------------------
# chains: "k3s2p1 x5", "conv:k3p1 pool:k2"


@dataclass(frozen=True)
class ChainStep:
    """One step of a size chain: a conv, pool or transposed conv with its settings."""

    op: str = "conv"
    kernel: int = 1
    stride: int | None = None
    padding: int = 0
    dilation: int = 1
    ceil_mode: bool = False
    output_padding: int = 0
    text: str = field(default="", compare=False)


_STEP_RE = re.compile(
    r"^(?:(?P<op>conv|pool|maxpool|avgpool|convT|convt|deconv)[:]?)?"
    r"k(?P<k>\d+)(?:s(?P<s>\d+))?(?:p(?P<p>\d+))?(?:d(?P<d>\d+))?(?:op(?P<op_pad>\d+))?(?P<ceil>c|ceil)?$")


def _chain_int(digits: str, what: str) -> int:
    from .limits import MAX_DIGITS, MAX_INT

    if len(digits) > MAX_DIGITS:
        raise ShapeError(f"chain: a {what} of {len(digits):,} digits; convlab takes at most {MAX_DIGITS} "
                         f"(up to {MAX_INT:,})")
    value = int(digits)
    if value > MAX_INT:
        raise ShapeError(f"chain: {what} {value:,} is beyond convlab's limit of {MAX_INT:,}")
    return value


def _chain_room(n: int) -> None:
    from .limits import MAX_CHAIN_STEPS

    if n > MAX_CHAIN_STEPS:
        raise ShapeError(f"chain: {n:,} steps, beyond convlab's limit of {MAX_CHAIN_STEPS:,}")


def parse_chain(text: str) -> list[ChainStep]:
    """Parse a chain such as ``"k3s2p1 x5"`` or ``"conv:k5p2 pool:k2 conv:k5 pool:k2"``.

    A step is ``[conv|pool|convT][:]k<K>[s<S>][p<P>][d<D>][op<N>][c]`` (``c``: ceil_mode for pools,
    ``op``: output_padding for transposed convs); ``xN`` after a step repeats it N times. Pool
    stride defaults to the kernel, conv stride to 1.
    """
    tokens = [t for t in re.split(r"[\s,→]+|->", text.strip()) if t]
    steps: list[ChainStep] = []
    for tok in tokens:
        m = re.fullmatch(r"[x×\*](\d+)", tok)
        if m:
            if not steps:
                raise ShapeError(f"chain: repeat {tok!r} has no step before it to repeat")
            n = _chain_int(m.group(1), "repeat count")
            if n < 1:
                raise ShapeError(f"chain: repeat count must be >= 1, got {n}")
            _chain_room(len(steps) + n - 1)
            steps.extend([steps[-1]] * (n - 1))
            continue
        rep = 1
        m = re.fullmatch(r"(.+?)[x×\*](\d+)", tok)
        if m and not _STEP_RE.match(tok):
            tok, rep = m.group(1), _chain_int(m.group(2), "repeat count")
        m = _STEP_RE.match(tok)
        if not m:
            raise ShapeError(f"chain: cannot read step {tok!r}; write steps like k3s2p1, pool:k2, convT:k4s2p1, "
                             f"with xN to repeat (e.g. \"k3s2p1 x5\")")
        op = {"maxpool": "pool", "avgpool": "pool", "convt": "convT", "deconv": "convT"}.get(m["op"] or "conv",
                                                                                         m["op"] or "conv")
        k = _chain_int(m["k"], "kernel")
        s = _chain_int(m["s"], "stride") if m["s"] else (k if op == "pool" else 1)
        _chain_room(len(steps) + rep)
        steps.extend([ChainStep(op, k, s, _chain_int(m["p"] or "0", "padding"), _chain_int(m["d"] or "1", "dilation"),
                                bool(m["ceil"]), _chain_int(m["op_pad"] or "0", "output_padding"), tok)] * rep)
    if not steps:
        raise ShapeError("chain: no steps given; write e.g. \"k3s2p1 x5\"")
    return steps


def explain_chain(in_size: Size, steps: Sequence[ChainStep] | str) -> list[Explanation]:
    """Explain each step of a chain in turn, feeding each output to the next step."""
    if isinstance(steps, str):
        steps = parse_chain(steps)
    size = in_size
    out = []
    for i, st in enumerate(steps):
        try:
            if st.op == "pool":
                e = explain_pool(size, st.kernel, st.stride, st.padding, st.dilation, st.ceil_mode)
            elif st.op == "convT":
                e = explain_conv_transpose(size, st.kernel, st.stride, st.padding, st.dilation, st.output_padding)
            else:
                e = explain_conv(size, st.kernel, st.stride, st.padding, st.dilation)
        except ShapeError as err:
            raise ShapeError(f"step {i + 1} ({st.text or st.op}) on size {size}: {err}") from None
        out.append(e)
        size = e.output
    return out

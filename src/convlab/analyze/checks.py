"""Static checks of a model for an input shape: errors (the model cannot run) and warnings (it runs,
but something is likely unintended), each naming the layer and a fix."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .. import arith
from ..errors import ShapeError
from . import Summary, summary


# an fc layer reading raw pixels with more weights than this gets a warning: a linear classifier on
# CIFAR (3·32·32 → 10: 30,730) or a small MLP on MNIST does not, a fc on a large image does
FC_ON_PIXELS_PARAMS = 10_000_000


def _fp32(params: int) -> str:
    b = 4 * params
    for unit, f in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if b >= f:
            return f"{b / f:.0f} {unit}"
    return f"{b:,} bytes"


@dataclass(frozen=True)
class Finding:
    level: str   # "error" or "warning"
    code: str    # short identifier, e.g. "rows-unread"
    layer: str   # qualified layer name ('' for the whole model)
    message: str
    fix: str

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        where = f"{self.layer}: " if self.layer else ""
        return f"{self.level}: {where}{self.message}" + (f"\n  fix: {self.fix}" if self.fix else "")


def check(model, input_shape=None, **kw) -> tuple[list[Finding], Summary | None]:
    """Run every check; returns the findings and the summary (None when the model cannot be analysed)."""
    try:
        s = summary(model, input_shape, **kw)
    except ShapeError as e:
        return [Finding("error", "shape", "", str(e), "")], None
    return warnings_for(s), s


def memory_finding(s: Summary) -> Finding | None:
    """An error when one forward and backward pass at the summary's batch size (fp32 parameters plus every
    layer's output) needs more memory than this machine has available: the model cannot run here."""
    from ..limits import available_memory, gib

    need = s.param_bytes + s.activation_bytes
    avail = available_memory()
    if need <= avail:
        return None
    return Finding(
        "error", "memory", "",
        f"the model cannot run on this machine: one pass at batch {s.batch_size} needs {gib(need)} in fp32 "
        f"({gib(s.param_bytes)} for {s.params:,} parameters, {gib(s.activation_bytes)} for the layers' outputs), "
        f"and {gib(avail)} of memory is available",
        "make it smaller: fewer channels, downsample earlier (strided conv or pooling), gap before the flatten, "
        "or a smaller input")


def warnings_for(s: Summary) -> list[Finding]:
    out: list[Finding] = []
    mem = memory_finding(s)
    if mem is not None:
        out.append(mem)
    leaves = [r for r in s.rows if r.leaf]
    total = s.trainable_params or 1

    for r in leaves:
        info = r.info
        if r.type in ("Conv2d", "MaxPool2d", "AvgPool2d") and "kernel" in info and r.input_shape and \
                len(r.input_shape) == 4 and not isinstance(info.get("padding"), str):
            found = []
            for axis, i in (("H", 0), ("W", 1)):
                size = r.input_shape[2 + i]
                k, st, p, d = info["kernel"][i], info["stride"][i], info["padding"][i], info["dilation"][i]
                if info.get("ceil_mode") or k < st:  # k < s subsamples by design (1x1 stride-2 projections)
                    continue
                try:
                    e = (arith.explain_pool if r.type != "Conv2d" else arith.explain_conv)(size, k, st, p, d)
                except ShapeError:
                    continue
                if e.dims[0].dropped:
                    found.append((axis, size, st, e.dims[0]))
            if len(found) == 2 and found[0][1:3] == found[1][1:3] and found[0][3].substituted == found[1][3].substituted:
                found = [("H and W", *found[0][1:])]
            for axis, size, st, dim in found:
                out.append(Finding(
                    "warning", "rows-unread", r.name,
                    f"stride {st} leaves the last {dim.dropped} input row(s) of {axis}={size} unread "
                    f"({dim.substituted} = {dim.output})",
                    (dim.fix or "").removeprefix("Fix: ").rstrip(".") or "change the padding or stride"))

    linears = [r for r in leaves if r.type == "Linear"]
    if linears and linears[0].trainable_params > total / 2 and len(linears) > 1:
        r = linears[0]
        c = r.input_shape[-1] if r.input_shape else "?"
        out.append(Finding(
            "warning", "big-first-fc", r.name,
            f"the first fc holds {r.trainable_params:,} of {total:,} trainable parameters "
            f"({100 * r.trainable_params / total:.0f}%), from {c} input features",
            "shrink the map before it (more pooling or a strided conv), or use global average pooling (gap) "
            "before flatten"))

    if linears and len(s.input_shape) == 3 and s.input_shape[1] * s.input_shape[2] > 1:
        r = linears[0]
        before = leaves[:leaves.index(r)]
        if r.trainable_params > FC_ON_PIXELS_PARAMS and not any(b.type.startswith("Conv") for b in before):
            c, h, w = s.input_shape
            outs = r.output_shape[-1] if r.output_shape else "?"
            out.append(Finding(
                "warning", "fc-on-pixels", r.name,
                f"a fully connected layer on the raw pixels: each of its {outs:,} outputs has its own weight for "
                f"every one of the {c * h * w:,} input values ({c}×{h}×{w}): {r.trainable_params:,} parameters "
                f"({_fp32(r.trainable_params)} in fp32), none of which knows where a pixel is",
                "start with convolutions: they share one small kernel across positions (translation invariance) "
                "and look only nearby (locality), e.g. conv(32,3,p=1) relu maxpool(2), and pool down before the fc"))

    convs = [r for r in leaves if r.type == "Conv2d"]
    if convs:
        first = convs[0]
        groups = first.info.get("groups", 1)
        cin = first.info.get("in_channels")
        if cin == 3 and groups == 3:
            parent = first.name.rsplit(".", 1)[0] if "." in first.name else first.name
            out.append(Finding(
                "warning", "separable-at-input", parent,
                "a depthwise(-separable) conv right at the RGB input: it filters R, G and B apart, although "
                "they are highly correlated",
                "start with a regular conv (e.g. conv(32,3,p=1)) and use separable convs after it"))

    for a, b in zip(leaves, leaves[1:]):
        if a.type == "Conv2d" and b.type.startswith("BatchNorm") and a.info.get("bias") and \
                a.output_shape == b.input_shape:
            out.append(Finding(
                "warning", "bias-before-bn", a.name,
                f"conv with bias straight before {b.name} ({b.type}): BatchNorm subtracts the mean, so the "
                f"bias is redundant ({a.output_shape[1]} wasted parameters)",
                "write bias=false on the conv (conv(…, bias=false)) or nn.Conv2d(..., bias=False)"))
    return out

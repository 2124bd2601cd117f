"""Grad-CAM (Selvaraju et al. 2017): where the evidence for a class lies, at a conv layer."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import UsageError, did_you_mean
from .activations import conv_layers_in_order
from ..training.head import class_scores
from .common import _eval_mode, _to_model


@dataclass
class GradCAM:
    """A Grad-CAM map and how it was made.

    ``map``: (H, W) at the image's size, from ``low`` (h, w) at the layer's resolution; both ≥ 0 and
    not rescaled. ``weights``: one per channel, the spatial mean of the class score's gradient.
    ``score`` is the class score before the softmax, ``prob`` after it. ``start``/``jump``: where the
    layer's unit (0, 0) is centred on the image and how far apart its units are, in pixels (None when
    the receptive field could not be traced and the map was resized to the image instead).
    """

    map: torch.Tensor
    low: torch.Tensor
    weights: torch.Tensor
    layer: str
    target: int
    score: float
    prob: float
    start: tuple[float, float] | None = None
    jump: tuple[int, int] | None = None


def _unit_geometry(model: nn.Module, shape, layer: str):
    """(start, jump) of a layer's units on the input, from convlab's receptive-field trace, or None."""
    from ..analyze import summary

    try:
        rows = summary(model, tuple(shape)).rows
    except Exception:  # noqa: BLE001 - a model the tracer cannot follow is placed by a plain resize
        return None
    rf = next((r.receptive_field for r in rows if r.name == layer), None)
    if not isinstance(rf, dict):
        return None
    return (float(rf["start"][0]), float(rf["start"][1])), (int(rf["jump"][0]), int(rf["jump"][1]))


def place_map(low: torch.Tensor, size: tuple[int, int], start, jump) -> torch.Tensor:
    """A layer's (h, w) map on the (H, W) image: each unit at the centre of its receptive field
    (``start + jump·index``), bilinear between units, the edge units' values beyond them."""
    h, w = low.shape
    out = low
    for dim, (n, first, step, length) in enumerate(((h, start[0], jump[0], size[0]), (w, start[1], jump[1], size[1]))):
        u = ((torch.arange(length, dtype=torch.float64) - first) / step).clamp(0, n - 1)   # fractional unit index
        i0 = u.floor().long()
        i1 = (i0 + 1).clamp(max=n - 1)
        f = (u - i0).to(low.dtype)
        a, b = out.index_select(dim, i0), out.index_select(dim, i1)
        f = f[:, None] if dim == 0 else f[None, :]
        out = a * (1 - f) + b * f
    return out


def _logits_module(model: nn.Module):
    """A trailing softmax/sigmoid of a sequential model, whose input holds the scores before it."""
    if isinstance(model, nn.Sequential) and len(model) and isinstance(model[-1], (nn.Softmax, nn.LogSoftmax,
                                                                                  nn.Sigmoid)):
        return model[-1]
    return None


def gradcam(model: nn.Module, x: torch.Tensor, target: int | None = None, layer: str | None = None) -> GradCAM:
    """Grad-CAM of one image ``x`` (C, H, W) or (1, C, H, W) for class ``target`` (default: the predicted one)
    at conv layer ``layer`` (default: the last conv the forward calls).

    Selvaraju et al. 2017, eq. 1-2: with A (C, h, w) the layer's output and y the class score before
    the softmax, α_c = mean over (i, j) of ∂y/∂A[c, i, j]; the map is ReLU(Σ_c α_c A[c]), upsampled to
    the image. The upsampling puts each unit at the centre of its receptive field (convlab's trace) and
    interpolates bilinearly between them: with 'same' padding that is within half a stride of the usual
    resize, but an unpadded
    conv's units do not reach the borders (LeNet's conv2: 10×10 units centred on pixels 4.5 … 22.5 of
    28), and stretching them there would move the evidence by up to 4.5 pixels. The model runs in
    evaluation mode; its parameters are not changed.
    """
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4 or x.shape[0] != 1:
        raise UsageError(f"gradcam takes one image (C, H, W), got a tensor of shape {list(x.shape)}")
    convs = {n: m for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    if not convs:
        raise UsageError(f"{type(model).__name__} has no Conv2d layer: Grad-CAM needs a conv layer's maps")
    if layer is None:
        order = conv_layers_in_order(model, x)
        if not order:
            raise UsageError("the forward called none of the model's conv layers")
        layer = order[-1]
    elif layer not in convs:
        modules = [n for n, _ in model.named_modules() if n]
        what = f"{layer!r} is a {type(dict(model.named_modules())[layer]).__name__}, not a conv layer" \
            if layer in modules else f"no conv layer named {layer!r}{did_you_mean(layer, convs)}"
        raise UsageError(f"{what}; Grad-CAM reads a conv layer's maps. The model's conv layers: {', '.join(convs)}")
    conv = convs[layer]
    held: dict = {}

    def keep(m, a, out):
        held["A"] = out
        return out.clone()  # later in-place ops (an in-place ReLU) change the clone, not A

    def keep_logits(m, a, out):
        held["logits"] = a[0]

    x = _to_model(model, x).detach().clone().requires_grad_(True)  # a graph even when parameters are frozen
    hooks = [conv.register_forward_hook(keep)]
    last = _logits_module(model)
    if last is not None:
        hooks.append(last.register_forward_hook(keep_logits))
    try:
        with _eval_mode(model), torch.enable_grad():
            out = model(x)
            logits = held.get("logits", out)
            if logits.dim() == 2 and logits.shape[1] == 1:  # a binary logit z: the two scores (−z/2, z/2)
                logits = class_scores(logits)
            if logits.dim() != 2:
                raise UsageError(f"the model's output has shape {list(logits.shape)}; Grad-CAM needs class scores "
                                 f"(1, K)")
            k = logits.shape[1]
            if target is None:
                target = int(logits[0].argmax())
            if not 0 <= target < k:
                raise UsageError(f"class {target} is outside the model's {k} classes (0..{k - 1})")
            score = logits[0, target]
            if "A" not in held:
                raise UsageError(f"the forward did not call {layer}")
            A = held["A"]
            (grad,) = torch.autograd.grad(score, A)
    finally:
        for h in hooks:
            h.remove()
    A, grad = A.detach()[0].float(), grad.detach()[0].float()           # (C, h, w)
    weights = grad.mean(dim=(1, 2))                                      # α_c: (C,)
    low = torch.relu((weights[:, None, None] * A).sum(0))               # (h, w)
    geometry = _unit_geometry(model, x.shape[1:], layer)
    if geometry is not None:
        up = place_map(low, tuple(x.shape[-2:]), *geometry)
    else:
        up = F.interpolate(low[None, None], size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False)[0, 0]
    probs = torch.softmax(logits.detach().float(), 1)[0]
    return GradCAM(up.cpu(), low.cpu(), weights.cpu(), layer, target, float(score.detach()), float(probs[target]),
                   *(geometry or (None, None)))


# ---------------------------------------------------------------------------------------------
# the fc head as convolutions

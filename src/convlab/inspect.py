"""Inside a trained model: how sparse each activation is, where the evidence for a class lies, and the
fc head turned into convolutions that slide over larger images.

* :func:`activation_stats` — per activation layer, in depth order: exact zeros, blank channels per
  image, dead channels, mean and std, over a stream of batches. It checks the course notes' claim
  that deeper activations are sparser ("more and more filters are blank").
* :func:`gradcam` — Grad-CAM (Selvaraju et al. 2017) of one image at a conv layer.
* :func:`fully_convolutional` — a copy whose ``flatten → fc …`` head is convolutions, so a larger
  input gives a grid of class scores; :func:`class_grid` runs it and places each score on the image.
* :func:`load_image` — a PNG/JPEG file converted to a model's input, saying what was done.

Activations are found in two ways, because a model's forward may call them either way: a forward
hook on every activation module (``nn.ReLU``, ``nn.GELU``, …), and a ``TorchFunctionMode`` that sees
each functional call (``F.relu(x)``, ``x.relu()``, ``torch.sigmoid(x)``) made outside such a module.
Measuring "the input of the next module" instead would miss an activation whose output goes to an
addition (a residual block's last ReLU), to ``return`` or to another functional op, and would
wrongly attribute in-place ones; the mode sees the call itself, wherever it is made.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from .errors import ConversionError, DataError, UsageError, did_you_mean

# activation modules: hooked by name
ACTIVATION_MODULES: tuple[type, ...] = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
    nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.Sigmoid, nn.Tanh, nn.Softplus, nn.Threshold)

# functional activations: seen by the TorchFunctionMode when called outside an activation module
ACTIVATION_FUNCTIONS: dict[Callable, str] = {
    F.relu: "relu", F.relu_: "relu", torch.relu: "relu", torch.relu_: "relu", torch.Tensor.relu: "relu",
    torch.Tensor.relu_: "relu", F.relu6: "relu6", F.leaky_relu: "leaky_relu", F.elu: "elu", F.selu: "selu",
    F.celu: "celu", F.gelu: "gelu", F.silu: "silu", F.mish: "mish", F.hardswish: "hardswish",
    F.hardsigmoid: "hardsigmoid", torch.sigmoid: "sigmoid", torch.Tensor.sigmoid: "sigmoid", F.sigmoid: "sigmoid",
    torch.tanh: "tanh", torch.Tensor.tanh: "tanh", F.tanh: "tanh", F.softplus: "softplus"}


# activations with a zero region: exact zeros (blank maps) are possible; others (sigmoid, GELU, …) are not
ZEROING = frozenset({"ReLU", "ReLU6", "Hardtanh", "Threshold", "Hardswish", "Hardsigmoid", "F.relu", "F.relu6",
                     "F.hardswish", "F.hardsigmoid"})


def _first_param(model: nn.Module):
    return next(model.parameters(), None)


def _to_model(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    p = _first_param(model)
    return x.to(p.device, p.dtype) if p is not None else x


class _Capture:
    """Calls ``record(name, type_name, output)`` for every activation output of each forward.

    Names: an activation module's own name (``relu1``, ``layer1.0.relu``); a functional call
    ``OWNER:FN`` where OWNER is the module whose forward made it (``forward`` for the model's own),
    e.g. ``layer2.0:relu``. A second call of the same name in one forward is ``NAME#2``, and so on
    (a ResNet block calls its ``relu`` module twice: after bn1 and after the addition).
    """

    def __init__(self, model: nn.Module, record: Callable[[str, str, torch.Tensor], None]):
        self.model, self.record = model, record
        self.names = {m: n for n, m in model.named_modules()}
        self.stack: list[nn.Module] = []
        self.calls: dict[str, int] = {}
        self.handles: list = []
        self.mode: TorchFunctionMode | None = None

    def _name(self, base: str) -> str:
        k = self.calls.get(base, 0) + 1
        self.calls[base] = k
        return base if k == 1 else f"{base}#{k}"

    def __enter__(self) -> "_Capture":
        capture = self

        def pre(m, args):
            if m is capture.model:  # a new forward: counts start again
                capture.stack.clear()
                capture.calls.clear()
            capture.stack.append(m)

        def post(m, args, out):
            if capture.stack and capture.stack[-1] is m:
                capture.stack.pop()
            if isinstance(m, ACTIVATION_MODULES) and isinstance(out, torch.Tensor):
                capture.record(capture._name(capture.names[m] or "forward"), type(m).__name__, out)

        for m in self.model.modules():
            self.handles.append(m.register_forward_pre_hook(pre))
            self.handles.append(m.register_forward_hook(post))

        class Mode(TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                out = func(*args, **(kwargs or {}))
                fn = ACTIVATION_FUNCTIONS.get(func) if isinstance(out, torch.Tensor) else None
                if fn is not None:
                    owner = capture.stack[-1] if capture.stack else capture.model
                    if not isinstance(owner, ACTIVATION_MODULES):  # else its forward hook records it
                        capture.record(capture._name(f"{capture.names.get(owner) or 'forward'}:{fn}"),
                                       f"F.{fn}", out)
                return out

        self.mode = Mode()
        self.mode.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.mode.__exit__(*exc)
        for h in self.handles:
            h.remove()
        self.handles.clear()


class _eval_mode:
    """Evaluation mode for the block, then the mode the model was in."""

    def __init__(self, model: nn.Module):
        self.model, self.was = model, model.training

    def __enter__(self):
        self.model.eval()

    def __exit__(self, *exc):
        self.model.train(self.was)


# ---------------------------------------------------------------------------------------------
# activation statistics


@dataclass
class LayerStats:
    """One activation layer's numbers over every image seen.

    ``zeros``: fraction of exactly-zero values; ``blank``: mean over images of the fraction of
    channels whose whole map is zero (for a vector after flatten, a channel is one unit); ``dead``:
    channels that are zero for every image; ``mean``/``std`` of all values.
    """

    name: str
    type: str
    shape: tuple[int, ...]          # one image's output: (C, H, W) for a map, (F,) for a vector
    zeros: float
    blank: float
    blank_min: float                # the least and most blank image
    blank_max: float
    dead: list[int]
    mean: float
    std: float

    @property
    def kind(self) -> str:
        return "map" if len(self.shape) == 3 else "vector"

    @property
    def channels(self) -> int:
        return self.shape[0]


@dataclass
class ActivationStats:
    """What :func:`activation_stats` returns: the layers in depth (call) order and the images used."""

    layers: list[LayerStats]
    n_images: int
    images: dict = field(default_factory=dict)   # e.g. {"split": "test", "indices": "0..999"}: to reproduce
    model: str = ""

    def layer(self, name: str) -> LayerStats:
        for s in self.layers:
            if s.name == name:
                return s
        raise UsageError(f"no activation layer {name!r}{did_you_mean(name, [s.name for s in self.layers])}")

    def verdict(self) -> str:
        """One line on the notes' claim (deeper activations are sparser, more filters blank), from the numbers."""
        return sparsity_verdict(self.layers)

    def to_dict(self) -> dict:
        return {"model": self.model, "n_images": self.n_images, "images": self.images,
                "layers": [{**asdict(s), "shape": list(s.shape), "kind": s.kind, "dead_count": len(s.dead)}
                           for s in self.layers],
                "verdict": self.verdict()}


RARE = 0.05  # blank channels below this fraction per image are "rare": the values are sparse, the filters seldom blank


def _trend(vals: list[float]) -> tuple[str, int]:
    """('every step' | 'overall' | 'no', rises) for a sequence over depth."""
    steps = len(vals) - 1
    up = sum(vals[i + 1] > vals[i] for i in range(steps))
    if up == steps:
        return "every step", up
    return ("overall" if vals[-1] > vals[0] else "no"), up


def sparsity_verdict(layers: list[LayerStats]) -> str:
    """What the numbers say about the notes' claim: deeper activations are sparser, and "more and more
    filters are blank".

    Only ReLU-like layers count (others are never exactly zero), and only the conv (map) layers when
    there are two or more, as the claim is about feature maps. "yes": exact zeros rise at every step,
    blank channels never fall and end at ``RARE`` (5%) of the channels per image or more; "partly": either
    rises from the first layer to the last; "no": neither does.
    """
    zeroing = [s for s in layers if s.type in ZEROING]
    if not zeroing:
        types = ", ".join(sorted({s.type for s in layers})) or "none"
        return (f"Deeper is sparser? cannot tell from exact zeros: the model's activations ({types}) are never "
                f"exactly zero — blank filters need a ReLU-like activation")
    left_out = sorted({s.type for s in layers} - ZEROING)
    maps = [s for s in zeroing if s.kind == "map"]
    chosen, what = (maps, "conv activation layers") if len(maps) >= 2 else (zeroing, "activation layers")
    if len(chosen) < 2:
        return "Deeper is sparser? cannot tell: the model has fewer than two ReLU-like activation layers"
    z, b = [s.zeros for s in chosen], [s.blank for s in chosen]
    steps = len(chosen) - 1
    (zt, z_up), (bt, b_up) = _trend(z), _trend(b)
    b_not_down = all(b[i + 1] >= b[i] for i in range(steps))
    if zt == "every step" and b_not_down and b[-1] > b[0] and b[-1] >= RARE:
        answer = "yes"
    elif z[-1] > z[0] or b[-1] > b[0]:
        answer = "partly"
    else:
        answer = "no"

    def seq(vals):
        if len(vals) <= 6:
            return " → ".join(f"{100 * v:.1f}%" for v in vals)
        return f"{100 * vals[0]:.1f}% → … → {100 * vals[-1]:.1f}% (max {100 * max(vals):.1f}%)"

    def says(trend: str, up: int) -> str:
        if steps == 1:
            return "rise" if up else "do not rise"
        return {"every step": "rise at every step", "overall": f"rise overall ({up} of {steps} steps up)",
                "no": f"do not rise ({up} of {steps} steps up)"}[trend]

    rare = (f" — whole blank maps stay rare (under {100 * RARE:.0f}% of the channels of an image): more values are "
            f"zero, but the filters are seldom blank") if max(b) < RARE else ""
    return (f"Deeper is sparser? {answer}, over this model's {len(chosen)} {what} ({chosen[0].name} … "
            f"{chosen[-1].name}): exact zeros {seq(z)} {says(zt, z_up)}; blank channels per image {seq(b)} "
            f"{says(bt, b_up)}{rare}"
            + (f"; {', '.join(left_out)} layers left out: never exactly zero" if left_out else ""))


class _Acc:
    """Running sums for one layer (on the layer's device; float64 for the moments)."""

    def __init__(self, name: str, type_name: str, y: torch.Tensor):
        self.name, self.type = name, type_name
        self.shape = tuple(y.shape[1:])
        dev = y.device
        self.zeros = torch.zeros((), dtype=torch.float64, device=dev)
        self.sum = torch.zeros((), dtype=torch.float64, device=dev)
        self.sumsq = torch.zeros((), dtype=torch.float64, device=dev)
        self.blank = torch.zeros((), dtype=torch.float64, device=dev)
        self.blank_min, self.blank_max = 1.0, 0.0
        self.active = torch.zeros(self.shape[0], dtype=torch.bool, device=dev)
        self.numel = 0
        self.n = 0

    def add(self, y: torch.Tensor) -> None:
        if tuple(y.shape[1:]) != self.shape:
            raise UsageError(f"activation {self.name} changed shape between batches ({list(self.shape)} → "
                             f"{list(y.shape[1:])}): feed images of one size")
        y = y.detach()
        zero = y == 0
        self.zeros += zero.sum()
        yd = y.double()
        self.sum += yd.sum()
        self.sumsq += (yd * yd).sum()
        self.numel += y.numel()
        blank = zero.flatten(2).all(2) if y.dim() > 2 else zero     # (B, C): the channel's map is all zero
        frac = blank.double().mean(1)                                # (B,): fraction of blank channels
        self.blank += frac.sum()
        self.blank_min = min(self.blank_min, float(frac.min()))
        self.blank_max = max(self.blank_max, float(frac.max()))
        self.active |= ~blank.all(0)
        self.n += y.shape[0]

    def result(self) -> LayerStats:
        mean = float(self.sum) / self.numel
        var = max(float(self.sumsq) / self.numel - mean * mean, 0.0)
        return LayerStats(self.name, self.type, self.shape, float(self.zeros) / self.numel, float(self.blank) / self.n,
                          self.blank_min, self.blank_max, [int(i) for i in (~self.active).nonzero().flatten()],
                          mean, var ** 0.5)


def activation_stats(model: nn.Module, batches: Iterable, *, images: dict | None = None,
                     name: str = "") -> ActivationStats:
    """Sparsity and moments of every activation output, in depth order, over all images of ``batches``.

    ``batches`` yields image tensors (N, C, H, W) or (images, labels) pairs; each is moved to the
    model's device and run in evaluation mode without gradients. ``images`` describes which images they
    are (split and indices), so the numbers can be reproduced; it is stored with the result.
    Activation modules and functional activation calls are both seen (see the module docstring).
    """
    accs: "OrderedDict[str, _Acc]" = OrderedDict()

    def record(layer: str, type_name: str, y: torch.Tensor) -> None:
        if y.dim() < 2:
            return
        if layer not in accs:
            accs[layer] = _Acc(layer, type_name, y)
        accs[layer].add(y)

    n = 0
    with _eval_mode(model), torch.no_grad(), _Capture(model, record):
        for b in batches:
            x = b[0] if isinstance(b, (tuple, list)) else b
            model(_to_model(model, x))
            n += x.shape[0]
    if n == 0:
        raise UsageError("no images to measure: the batches were empty")
    if not accs:
        raise UsageError(f"{name or type(model).__name__} has no activation (no activation module and no functional "
                         f"relu/sigmoid/tanh/… call in its forward): nothing to measure")
    return ActivationStats([a.result() for a in accs.values()], n, dict(images or {}), name)


def activation_maps(model: nn.Module, image: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
    """Every activation output for one image (C, H, W), in depth order: {name: (C', H', W') or (F,)}."""
    out: "OrderedDict[str, torch.Tensor]" = OrderedDict()

    def record(layer, type_name, y):
        out[layer] = y.detach()[0].float().cpu()

    with _eval_mode(model), torch.no_grad(), _Capture(model, record):
        model(_to_model(model, image.unsqueeze(0)))
    return out


# ---------------------------------------------------------------------------------------------
# Grad-CAM


def conv_layers_in_order(model: nn.Module, x: torch.Tensor) -> list[str]:
    """The Conv2d modules' names in the order the forward calls them (each once)."""
    names = {m: n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    seen: list[str] = []
    hooks = [m.register_forward_hook(lambda m, a, o: seen.append(names[m])) for m in names]
    try:
        with _eval_mode(model), torch.no_grad():
            model(_to_model(model, x))
    finally:
        for h in hooks:
            h.remove()
    return list(dict.fromkeys(seen))


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
    from . import summary

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
    probs = torch.softmax(logits.detach().float(), 1)[0] if logits.shape[1] > 1 else torch.sigmoid(logits.detach())[0]
    return GradCAM(up.cpu(), low.cpu(), weights.cpu(), layer, target, float(score.detach()), float(probs[target]),
                   *(geometry or (None, None)))


# ---------------------------------------------------------------------------------------------
# the fc head as convolutions


_ELEMENTWISE = ACTIVATION_MODULES + (nn.Dropout, nn.Identity)
_GLOBAL_POOLS = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


def _pool_size(m) -> str:
    s = m.output_size
    s = (s, s) if isinstance(s, int) or s is None else tuple(s)
    return "×".join(str(v) for v in s)


def fully_convolutional(model: nn.Module, input_shape) -> nn.Sequential:
    """A copy of ``model`` whose fc head is convolutions, so it slides over larger images.

    The first fc after the flatten reads a C×h×w map (16×5×5 in LeNet, 512×7×7 in VGG-16); it
    becomes a conv with C input channels, out_features filters and an h×w kernel, its weight the fc's
    weight viewed as (out, C, h, w) — the same numbers, since flatten orders features channel, row,
    column. Later fc layers become 1×1 convs. Activations and dropout stay as they are (element-wise,
    they act the same on a map), a BatchNorm1d after an fc becomes a BatchNorm2d with the same
    statistics. At ``input_shape`` (C, H, W) the copy's output (N, K, 1, 1) is the original's (N, K);
    a larger input gives (N, K, H', W'): the class scores of every H×W window, one step of the
    network's total stride apart.

    Raises :class:`ConversionError` for a model that is not a sequence of layers, one whose global or
    adaptive pooling already makes it take any input size (a larger image then gives one vector, not a
    grid), or one with a layer after the flatten that is not an fc, an element-wise layer or a bn after
    an fc.
    """
    if not isinstance(model, nn.Sequential):
        raise ConversionError(f"fully_convolutional converts a sequence of layers (what convlab's specs and zoo build); "
                              f"a {type(model).__name__} has its own forward, so where its flatten and fc layers sit "
                              f"cannot be read from it")
    children = list(model.named_children())
    flat = next((i for i, (_, m) in enumerate(children) if isinstance(m, nn.Flatten)), None)
    if flat is None:
        raise ConversionError(f"the model has no flatten layer, so no flatten → fc head to convert: "
                              f"{' '.join(n for n, _ in children)}")
    for top, child in children[:flat]:
        for sub, m in child.named_modules():
            n = f"{top}.{sub}" if sub else top
            if isinstance(m, _GLOBAL_POOLS):
                raise ConversionError(
                    f"{n} ({type(m).__name__}) pools every map to {_pool_size(m)} whatever the input size, so the fc "
                    f"after it always reads the same number of features: the model already takes any image size, "
                    f"and a larger image gives one vector of class scores, not a grid. Sliding needs a model whose "
                    f"first fc reads a map of fixed size (lenet-modern, vgg*, cifar-cnn)")
            if isinstance(m, nn.Linear):
                raise ConversionError(f"{n} (Linear) comes before the flatten; only fc layers after it can be "
                                      f"converted")
    prefix = nn.Sequential(OrderedDict(children[:flat]))
    try:
        with _eval_mode(model), torch.no_grad():
            probe = prefix(_to_model(model, torch.zeros(1, *input_shape)))
    except RuntimeError as e:
        raise ConversionError(f"the model does not run on input {tuple(input_shape)}: {str(e).splitlines()[0]}") from None
    if probe.dim() != 4:
        raise ConversionError(f"the flatten reads a tensor of shape {list(probe.shape)}, not a (N, C, H, W) map")
    c, h, w = probe.shape[1:]
    layers: list[tuple[str, nn.Module]] = [(n, copy.deepcopy(m)) for n, m in children[:flat]]
    seen_fc, features = False, c * h * w
    for n, m in children[flat + 1:]:
        if isinstance(m, nn.Linear):
            if m.in_features != features:
                raise ConversionError(f"{n} reads {m.in_features} features but gets {features}")
            kernel = (h, w) if not seen_fc else (1, 1)
            cin = c if not seen_fc else m.in_features
            conv = nn.Conv2d(cin, m.out_features, kernel, bias=m.bias is not None, device=m.weight.device,
                             dtype=m.weight.dtype)
            with torch.no_grad():
                conv.weight.copy_(m.weight.view(m.out_features, cin, *kernel))   # (out, C·h·w) -> (out, C, h, w)
                if m.bias is not None:
                    conv.bias.copy_(m.bias)
            layers.append((n, conv))
            seen_fc, features = True, m.out_features
        elif isinstance(m, nn.PReLU) and m.num_parameters > 1 and not seen_fc:
            raise ConversionError(f"{n} (PReLU) has one slope per flattened feature ({m.num_parameters}), tied to a "
                                  f"position of the {c}×{h}×{w} map; a sliding window has no fixed position")
        elif isinstance(m, _ELEMENTWISE):
            layers.append((n, copy.deepcopy(m)))
        elif isinstance(m, nn.BatchNorm1d):
            if not seen_fc:
                raise ConversionError(
                    f"{n} (BatchNorm1d) sits between the flatten and the first fc and normalises each of the "
                    f"{c}·{h}·{w} = {features:,} flattened features with its own statistics, one per position of the "
                    f"{c}×{h}×{w} map; a convolution applies the same weights at every position, so it cannot hold "
                    f"them. Put the bn before the flatten (a BatchNorm2d) or after the first fc")
            bn = nn.BatchNorm2d(m.num_features, m.eps, m.momentum, m.affine, m.track_running_stats,
                                device=m.weight.device if m.affine else None)
            bn.load_state_dict(m.state_dict())
            layers.append((n, bn))
        elif isinstance(m, (nn.Softmax, nn.LogSoftmax)) and m.dim in (1, -1):
            layers.append((n, type(m)(dim=1)))
        else:
            raise ConversionError(
                f"{n} ({type(m).__name__}) sits in the head after the flatten; convlab converts fc layers and "
                f"element-wise layers (activations, dropout, a bn after an fc) there, and cannot tell how a "
                f"{type(m).__name__} would act on a grid of windows")
    if not seen_fc:
        raise ConversionError("the model has no fc (Linear) layer after its flatten: nothing to convert")
    fc = nn.Sequential(OrderedDict(layers))
    fc.train(model.training)
    fc.input_shape = tuple(input_shape)   # the size the original reads: one window
    fc.map_read = (c, h, w)               # the map its first fc read
    return fc


@dataclass
class ClassGrid:
    """Class scores of every window of a larger image, and where each window lies.

    ``scores``: (K, gh, gw) before the softmax; ``probs`` after it (over K). Window (i, j) covers rows
    ``i·stride[0] … i·stride[0] + window[0] − 1`` (and the same for columns); ``centre`` is where the
    receptive field of cell (0, 0) is centred, in input pixels (from convlab's receptive-field trace).
    """

    scores: torch.Tensor
    probs: torch.Tensor
    stride: tuple[int, int]
    window: tuple[int, int]
    centre: tuple[float, float]

    @property
    def classes(self) -> torch.Tensor:
        return self.probs.argmax(0)

    def cell_of(self, row: int, col: int) -> tuple[int, int] | None:
        """The cell whose window starts at input pixel (row, col), if one does."""
        (sh, sw), (gh, gw) = self.stride, self.scores.shape[1:]
        if row % sh or col % sw or row // sh >= gh or col // sw >= gw:
            return None
        return row // sh, col // sw


def _geometry(fc: nn.Sequential, input_shape) -> tuple[tuple[int, int], tuple[float, float]]:
    """(stride, centre of cell (0, 0)) of the converted model, from the receptive-field trace."""
    from . import summary

    rows = summary(fc, tuple(input_shape)).rows
    rf = next((r.receptive_field for r in reversed(rows) if isinstance(r.receptive_field, dict)), None)
    if rf is None:
        raise ConversionError("cannot trace the converted model's receptive field")
    jump, start = rf["jump"], rf["start"]
    return (int(jump[0]), int(jump[1])), (float(start[0]), float(start[1]))


def class_grid(fc: nn.Sequential, x: torch.Tensor) -> ClassGrid:
    """Run a :func:`fully_convolutional` model on one image (C, H, W) at least as large as the window."""
    c, h0, w0 = fc.input_shape
    if x.dim() != 3 or x.shape[0] != c:
        raise UsageError(f"expected one image {c}×H×W, got {list(x.shape)}")
    if x.shape[1] < h0 or x.shape[2] < w0:
        raise UsageError(f"the image is {x.shape[1]}×{x.shape[2]}, smaller than the {h0}×{w0} window the model reads")
    with _eval_mode(fc), torch.no_grad():
        scores = fc(_to_model(fc, x.unsqueeze(0)))[0].float().cpu()        # (K, gh, gw)
    stride, centre = _geometry(fc, fc.input_shape)
    return ClassGrid(scores, torch.softmax(scores, 0), stride, (h0, w0), centre)


# ---------------------------------------------------------------------------------------------
# images from files


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


@dataclass
class LoadedImage:
    """An image file as a model input: ``x`` (C, H, W) normalised, ``shown`` (C, H, W) uint8 as the model sees
    it before normalisation, and ``steps``, what was done, in words."""

    x: torch.Tensor
    shown: torch.Tensor
    steps: list[str]
    source: str


def _border_mean(a: torch.Tensor) -> float:
    """Mean value of the outermost pixels of (…, H, W) images, in 0..255."""
    a = a.float()
    edges = torch.cat([a[..., 0, :].flatten(), a[..., -1, :].flatten(), a[..., :, 0].flatten(), a[..., :, -1].flatten()])
    return float(edges.mean())


def load_image(path, channels: int, mean, std, size: tuple[int, int] | None = None, *, invert: bool = False,
               min_size: tuple[int, int] | None = None, max_side: int | None = None,
               reference: torch.Tensor | None = None) -> LoadedImage:
    """Read a PNG/JPEG (anything Pillow opens) and make it the model's input.

    Transparent pixels are laid over white; the image is converted to greyscale (ITU-R 601 luma, as
    Pillow's "L") or RGB to match ``channels``; with ``size`` (H, W) it is padded to the target's
    aspect with its border colour (so nothing is cut off) and resized; without, it keeps its size,
    enlarged to ``min_size`` and shrunk to ``max_side`` where needed. ``invert`` turns light-on-dark
    into dark-on-light (Fashion-MNIST draws light objects on black). Then (x/255 − mean)/std with
    the dataset's per-channel mean and std. ``reference`` (uint8 dataset images) adds a hint when the
    file's border brightness is far from the dataset's.
    """
    try:
        from PIL import Image, ImageOps, UnidentifiedImageError
    except ImportError:
        raise DataError("reading an image file needs Pillow: pip install 'convlab[images]' (or pip install pillow)") from None
    import numpy as np

    p = Path(path)
    if not p.is_file():
        raise UsageError(f"{path}: no such image file")
    try:
        with Image.open(p) as im:
            im.load()
            img = im
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{path}: not an image Pillow can read ({type(e).__name__}); give a PNG, JPEG, BMP, GIF, "
                        f"TIFF or WebP file") from None
    steps = [f"read {p.name}: {img.width} wide, {img.height} high, {img.mode}"]
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        base = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(base, img.convert("RGBA"))
        steps.append("transparent pixels laid over white")
    if channels == 1:
        if img.mode != "L":
            img = img.convert("L")
            steps.append("converted to greyscale (luma 0.299 R + 0.587 G + 0.114 B)")
    elif channels == 3:
        if img.mode != "RGB":
            img = img.convert("RGB")
            steps.append("converted to RGB")
    else:
        raise UsageError(f"the model reads {channels}-channel images; image files give 1 (grey) or 3 (RGB)")
    if invert:
        img = ImageOps.invert(img)
        steps.append("inverted (255 − value)")
    resample = Image.Resampling.BILINEAR
    if size is not None:
        th, tw = size
        w0, h0 = img.size
        if abs(w0 / h0 - tw / th) > 1e-6:      # pad to the target's aspect with the border colour
            a = np.asarray(img)
            border = _border_mean(torch.tensor(a).movedim(-1, 0) if a.ndim == 3 else torch.tensor(a))
            fill = int(round(border)) if channels == 1 else tuple(
                int(round(v)) for v in np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]]).mean(0))
            nw, nh = max(w0, round(h0 * tw / th)), max(h0, round(w0 * th / tw))
            canvas = Image.new(img.mode, (nw, nh), fill)
            canvas.paste(img, ((nw - w0) // 2, (nh - h0) // 2))
            img = canvas
            steps.append(f"padded to {nw} wide, {nh} high with its border colour (keeps the whole image, as the dataset's "
                         f"centred objects)")
        if img.size != (tw, th):
            img = img.resize((tw, th), resample, reducing_gap=None)
            steps.append(f"resized to {tw} wide, {th} high (bilinear, antialiased)")
    else:
        w0, h0 = img.size
        scale = 1.0
        if min_size is not None:
            scale = max(scale, min_size[0] / h0, min_size[1] / w0)
        if max_side is not None and max(w0, h0) * scale > max_side:
            scale = max_side / max(w0, h0)
            if min_size is not None and min(h0 * scale / min_size[0], w0 * scale / min_size[1]) < 1:
                raise UsageError(f"{path} is {w0} wide and {h0} high: too narrow to hold a {min_size[0]}×{min_size[1]} "
                                 f"window once its longer side is shrunk to {max_side} pixels")
        if scale != 1.0:
            nw, nh = max(1, round(w0 * scale)), max(1, round(h0 * scale))
            img = img.resize((nw, nh), resample, reducing_gap=None)
            steps.append(f"{'enlarged' if scale > 1 else 'shrunk'} to {nw} wide, {nh} high")
    a = np.asarray(img, dtype=np.uint8)
    shown = torch.from_numpy(a.copy())
    shown = shown[None] if shown.dim() == 2 else shown.permute(2, 0, 1).contiguous()     # (C, H, W) uint8
    m = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
    x = (shown.float() / 255.0 - m) / s
    steps.append("normalised with the dataset's mean " + ", ".join(f"{v:.4f}" for v in mean) + " and std "
                 + ", ".join(f"{v:.4f}" for v in std))
    if reference is not None and len(reference):
        ref, mine = _border_mean(reference), _border_mean(shown)
        if abs(ref - mine) > 96:
            fix = "drop --invert" if invert else "pass --invert"
            steps.append(f"note: its border is {'light' if mine > ref else 'dark'} (mean {mine:.0f} of 255) while the "
                         f"dataset's images have {'dark' if ref < mine else 'light'} borders (mean {ref:.0f}): "
                         f"{fix} if the object should be {'light on dark' if ref < mine else 'dark on light'}")
    return LoadedImage(x, shown, steps, str(p))


def class_index(name: str, classes: list[str]) -> int:
    """A class given by name (any case) or number, else a UsageError listing the classes."""
    low = [c.lower() for c in classes]
    if name.lower() in low:
        return low.index(name.lower())
    if name.isdigit() and int(name) < len(classes):
        return int(name)
    raise UsageError(f"no class {name!r}{did_you_mean(name, classes)}; the classes are: {', '.join(classes)} "
                     f"(or a number 0..{len(classes) - 1})")


def predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Class probabilities (K,) for one image (C, H, W), in evaluation mode."""
    with _eval_mode(model), torch.no_grad():
        return torch.softmax(model(_to_model(model, x.unsqueeze(0))).float(), 1)[0].cpu()


def predict_batch(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Class probabilities (N, K) for images (N, C, H, W), in evaluation mode."""
    with _eval_mode(model), torch.no_grad():
        return torch.softmax(model(_to_model(model, x)).float(), 1).cpu()


__all__ = ["activation_stats", "activation_maps", "ActivationStats", "LayerStats", "sparsity_verdict", "gradcam",
           "GradCAM", "fully_convolutional", "ConversionError", "class_grid", "ClassGrid", "load_image", "LoadedImage",
           "class_index", "predict", "predict_batch"]

"""Activation statistics by depth: exact zeros, blank and dead channels, mean and std; and the maps themselves."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from ..errors import UsageError, did_you_mean
from .common import _eval_mode, _to_model


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

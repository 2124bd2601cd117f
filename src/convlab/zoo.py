"""The model zoo: the classic CNNs, each written in the spec language, exact to its source.

Every entry is one registered name with a function that writes its spec (so the builder, the
analyser and the printer read the same thing), a default input shape, the parameter count its
paper or torchvision publishes (for the default input and class count), and the source.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import Callable

from .errors import ZooError, did_you_mean


@dataclass(frozen=True)
class Entry:
    name: str
    family: str
    make: Callable[..., str]          # overrides -> spec text
    input_shape: tuple[int, int, int]  # default (C, H, W)
    num_classes: int                   # classes of the default head
    params: int | None                 # published parameter count (trainable + BN statistics excluded? see note)
    source: str
    overrides: dict = field(default_factory=dict)  # name -> (type, default, help[, choices])
    note: str = ""

    def spec(self, **overrides) -> str:
        return self.make(**{**{k: v[1] for k, v in self.overrides.items()}, **overrides})


_REGISTRY: dict[str, Entry] = {}


def register(entry: Entry) -> Entry:
    if entry.name in _REGISTRY:
        raise ValueError(f"zoo model {entry.name!r} is registered twice")
    _REGISTRY[entry.name] = entry
    return entry


def _natural(s: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a glob pattern, in natural order (resnet20 before resnet110)."""
    return sorted((n for n in _REGISTRY if fnmatch.fnmatch(n, pattern)), key=_natural)


def get(name: str) -> Entry:
    if name not in _REGISTRY:
        raise ZooError(f"unknown model {name!r}{did_you_mean(name, _REGISTRY)} ('convlab zoo' lists them all)")
    return _REGISTRY[name]


def parse_overrides(entry: Entry, items: dict) -> dict:
    out = {}
    for k, v in items.items():
        if k not in entry.overrides:
            allowed = ", ".join(entry.overrides) or "none"
            raise ZooError(f"{entry.name} has no option {k!r} (options: {allowed})")
        typ, choices = entry.overrides[k][0], entry.overrides[k][3:]
        try:
            if typ is bool:
                out[k] = v if isinstance(v, bool) else str(v).lower() in ("1", "true", "yes")
            elif typ is str:
                out[k] = str(v)
                if choices:  # matched without regard to case: shortcut=b is B
                    out[k] = next((c for c in choices[0] if c.lower() == out[k].lower()), out[k])
            else:
                out[k] = typ(v)
        except (TypeError, ValueError):
            raise ZooError(f"{entry.name}: option {k} must be {typ.__name__}, got {v!r}") from None
        if choices and out[k] not in choices[0]:
            raise ZooError(f"{entry.name}: {k} must be {' or '.join(choices[0])}, got {v!r}")
        if typ in (int, float) and out[k] <= 0:
            raise ZooError(f"{entry.name}: option {k} must be positive, got {v!r}")
    return out


def split_name(text: str) -> tuple[str, dict]:
    """'resnet20:shortcut=B,width=2' -> ('resnet20', {'shortcut': 'B', 'width': '2'})."""
    name, _, rest = text.partition(":")
    items = {}
    for part in filter(None, re.split(r"[,:]", rest)):
        if "=" not in part:
            raise ZooError(f"override {part!r} must be written key=value (e.g. {name}:shortcut=B)")
        k, v = part.split("=", 1)
        items[k.strip()] = v.strip()
    return name.strip(), items


def is_zoo_name(text: str) -> bool:
    return isinstance(text, str) and text.partition(":")[0].strip() in _REGISTRY


def spec_for(name_with_overrides: str, **overrides) -> tuple[str, Entry]:
    name, items = split_name(name_with_overrides)
    entry = get(name)
    items.update(overrides)
    return entry.spec(**parse_overrides(entry, items)), entry


# ---------------------------------------------------------------------------------------------
# the models

def _lenet() -> str:
    # 1x28x28 in: conv 5x5 pad 2 keeps 28, pool 14, conv 5x5 -> 10, pool 5: 16*5*5 = 400 features
    return ("conv(6,5,p=2) sigmoid avgpool(2) conv(16,5) sigmoid avgpool(2) flatten "
            "fc(120) sigmoid fc(84) sigmoid fc(10)")


def _lenet_modern(order: str = "pool-relu") -> str:
    # max-pool then ReLU computes exactly what d2l's conv→ReLU→max-pool does (ReLU is monotone, so it
    # commutes with max), on a quarter of the elements; bench/train_speed.py times the step both ways.
    block = "maxpool(2) relu" if order == "pool-relu" else "relu maxpool(2)"
    return f"conv(6,5,p=2) {block} conv(16,5) {block} flatten fc(120) relu fc(84) relu fc(10)"


register(Entry("lenet", "lenet", _lenet, (1, 28, 28), 10, 61_706,
               "LeCun et al. 1998 as in d2l 7.6 (sigmoid, average pooling)"))
register(Entry("lenet-modern", "lenet", _lenet_modern, (1, 28, 28), 10, 61_706,
               "d2l 7.6 exercise: ReLU and max-pooling (pooled before the ReLU: the same function, less work)",
               {"order": (str, "pool-relu", "pool-relu (fast) or relu-pool (d2l's order); same function",
                          ("pool-relu", "relu-pool"))}))

_VGG_CFG = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}
_VGG_PARAMS = {"vgg11": 132_863_336, "vgg13": 133_047_848, "vgg16": 138_357_544, "vgg19": 143_667_240}


def _vgg(cfg: list, hidden: int = 4096) -> Callable[..., str]:
    def make(hidden: int = hidden, dropout: float = 0.5) -> str:
        feats = " ".join("maxpool(2)" if v == "M" else f"conv({v},3,p=1) relu" for v in cfg)
        return (f"{feats} flatten fc({hidden}) relu dropout({dropout}) fc({hidden}) relu dropout({dropout}) "
                f"fc(1000)")
    return make


for _name, _cfg in _VGG_CFG.items():
    register(Entry(_name, "vgg", _vgg(_cfg), (3, 224, 224), 1000, _VGG_PARAMS[_name],
                   "Simonyan & Zisserman 2015; counts from torchvision's weights metadata",
                   {"hidden": (int, 4096, "width of the two hidden fc layers"),
                    "dropout": (float, 0.5, "dropout before each hidden fc")},
                   note="torchvision's adaptive 7x7 pool is left out: at 224x224 it is the identity, and at "
                        "other sizes convlab sizes the first fc from the shape instead"))


def _vgg_d2l(hidden: int = 4096, dropout: float = 0.5) -> str:
    # d2l 8.2: conv_arch ((1,64),(1,128),(2,256),(2,512),(2,512)) narrowed by 4 for Fashion-MNIST at 224x224
    blocks = ((1, 16), (1, 32), (2, 64), (2, 128), (2, 128))
    feats = " ".join(f"(conv({c},3,p=1) relu)x{n} maxpool(2)" for n, c in blocks)
    return f"{feats} flatten fc({hidden}) relu dropout({dropout}) fc({hidden}) relu dropout({dropout}) fc(10)"


register(Entry("vgg-d2l", "vgg", _vgg_d2l, (1, 224, 224), 10, None,
               "d2l 8.2 (VGG-11 narrowed 4x, trained on Fashion-MNIST resized to 224)",
               {"hidden": (int, 4096, "width of the hidden fc layers"), "dropout": (float, 0.5, "dropout")}))


_STEM = "conv(64,7,s=2,p=3,bias=false) bn relu maxpool(3,2,1)"


def _resnet_imagenet(layers: tuple, block: str) -> Callable[..., str]:
    def make() -> str:
        parts = [_STEM]
        for i, (n, width) in enumerate(zip(layers, (64, 128, 256, 512))):
            s = 1 if i == 0 else 2
            if block == "res":
                first, rest = f"res({width},s={s})", f"res({width})"
            else:
                first, rest = f"bottleneck({width},s={s})", f"bottleneck({width})"
            parts.append(first + (f" {rest}x{n - 1}" if n > 1 else ""))
        parts.append("gap flatten fc(1000)")
        return " ".join(parts)
    return make


for _name, _layers, _block, _params in (
        ("resnet18", (2, 2, 2, 2), "res", 11_689_512), ("resnet34", (3, 4, 6, 3), "res", 21_797_672),
        ("resnet50", (3, 4, 6, 3), "bottleneck", 25_557_032), ("resnet101", (3, 4, 23, 3), "bottleneck", 44_549_160),
        ("resnet152", (3, 8, 36, 3), "bottleneck", 60_192_808)):
    register(Entry(_name, "resnet", _resnet_imagenet(_layers, _block), (3, 224, 224), 1000, _params,
                   "He et al. 2016 (ImageNet); module names and counts as torchvision (v1.5: stride on the 3x3)"))


def _resnet_cifar(depth: int, plain: bool) -> Callable[..., str]:
    n = (depth - 2) // 6

    def make(shortcut: str = "A", width: int = 16) -> str:
        sc = "none" if plain else shortcut
        w0 = width
        parts = [f"conv({w0},3,p=1,bias=false) bn relu"]
        for i, width in enumerate((w0, 2 * w0, 4 * w0)):
            s = 1 if i == 0 else 2
            parts.append(f"res({width},s={s},shortcut={sc})" + (f" res({width},shortcut={sc})x{n - 1}" if n > 1 else ""))
        parts.append("gap flatten fc(10)")
        return " ".join(parts)
    return make


_CIFAR_PARAMS = {20: 269_722, 32: 464_154, 44: 658_586, 56: 853_018, 110: 1_727_962}
for _depth, _params in _CIFAR_PARAMS.items():
    register(Entry(f"resnet{_depth}", "resnet-cifar", _resnet_cifar(_depth, False), (3, 32, 32), 10, _params,
                   "He et al. 2016 §4.2 (CIFAR-10: 16-32-64 channels, 6n+2 layers, option A shortcuts)",
                   {"shortcut": (str, "A", "A: zero-pad + subsample (paper); B: 1x1 conv + bn projections",
                                 ("A", "B")),
                    "width": (int, 16, "channels of the first stage (16 in the paper; then 2x and 4x)")}))
    register(Entry(f"plain{_depth}", "plain-cifar", _resnet_cifar(_depth, True), (3, 32, 32), 10, _params,
                   "He et al. 2016 §4.2 / Figure 6: the same net without shortcuts (degradation experiment)",
                   {"width": (int, 16, "channels of the first stage (16 in the paper; then 2x and 4x)")}))


def _mobilenet(width: float = 1.0) -> str:
    def c(v: int) -> int:
        return max(8, int(v * width))

    cfg = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]
    parts = [f"conv({c(32)},3,s=2,p=1,bias=false) bn relu"]
    for out, s in cfg:
        parts.append(f"dwconv(3,s={s},p=1,bias=false) bn relu conv({c(out)},1,bias=false) bn relu")
    parts.append("gap flatten fc(1000)")
    return " ".join(parts)


register(Entry("mobilenet", "mobilenet", _mobilenet, (3, 224, 224), 1000, 4_231_976,
               "Howard et al. 2017 (MobileNet v1), Table 1; 4,231,976 trainable as Keras counts it",
               {"width": (float, 1.0, "width multiplier alpha")},
               note="published figure is trainable parameters; BatchNorm statistics add 21,888 non-trainable"))


def _sepnet(width: int = 32, dropout: float = 0.5) -> str:
    w = width
    return (f"conv({w},3,p=1) bn relu sepconv({2 * w},3,p=1) bn relu maxpool(2) sepconv({4 * w},3,p=1) bn relu "
            f"maxpool(2) sepconv({8 * w},3,p=1) bn relu gap flatten dropout({dropout}) fc(1) sigmoid")


register(Entry("sepnet", "sepnet", _sepnet, (3, 150, 150), 1, None,
               "the Keras notes' net: a regular conv at the RGB input, then separable convs, GAP, dropout, a sigmoid unit",
               {"width": (int, 32, "channels of the first conv"), "dropout": (float, 0.5, "dropout before the head")},
               note="binary head (1 sigmoid unit); num_classes resizes it"))


def _cifar_cnn(hidden: int = 128) -> str:
    return f"conv(16,3,p=1) relu maxpool(2) conv(32,3,p=1) relu maxpool(2) flatten fc({hidden}) relu fc(10)"


register(Entry("cifar-cnn", "cnn", _cifar_cnn, (3, 32, 32), 10, 268_650,
               "the notes' CIFAR example: Input → (Conv → ReLU → Pool) × 2 → FC → ReLU → FC; 2048 features into the first fc",
               {"hidden": (int, 128, "width of the hidden fc")}))


def _fastcnn(stem: int = 8, width: int = 24, hidden: int = 256) -> str:
    # 28x28 grey in: a 3x3 stride-2 stem halves the map at once (14x14, a ninth of a 28x28 conv's work),
    # a 3x3 conv at 14x14, max-pool to 7x7, then one BatchNorm on the pooled map (a quarter of the
    # elements it would see before the pool) so the net trains at lr 0.4; 7*7*width features into a
    # wide fc. The second conv costs stem*width per pixel, the fc almost nothing on a CPU: 8 stem
    # channels and fc 256 train faster than 16 and fc 128 for the same accuracy (README, "Time to accuracy")
    return (f"conv({stem},3,s=2,p=1) relu conv({width},3,p=1) maxpool(2) bn relu flatten "
            f"fc({hidden}) relu fc(10)")


register(Entry("fastcnn", "fastcnn", _fastcnn, (1, 28, 28), 10, 305_762,
               "convlab's time-to-accuracy net for 28x28 grey images: 91% on Fashion-MNIST in 3 epochs "
               "(bench/time_to_accuracy.py)",
               {"stem": (int, 8, "channels of the stride-2 stem conv"),
                "width": (int, 24, "channels of the second conv"),
                "hidden": (int, 256, "width of the hidden fc")}))


# what `make demo` and the README's first run train on Fashion-MNIST (bench/time_to_accuracy.py measures it)
DEMO_MODEL = "fastcnn"

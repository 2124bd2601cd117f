"""The layer vocabulary: one frozen dataclass per layer kind, and each kind's argument signature.

The parser fills these from text, YAML or JSON; the planner, the builder and the printer read them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Union

Pair = Union[int, tuple[int, int]]


@dataclass(frozen=True)
class Source:
    """Where a layer was written: line and column (1-based) and its text, for error messages."""

    line: int
    col: int
    text: str
    source: str = ""  # the whole spec line, to draw a caret under

    def where(self) -> str:
        """`` (line L, column C)``, the location every error message writes; empty without a line."""
        return f" (line {self.line}, column {self.col})" if self.line else ""

    def caret(self) -> str:
        if not self.source:
            return ""
        return caret_lines(self.source, self.col, len(self.text))


def caret_lines(line: str, col: int, width: int, room: int = 100) -> str:
    """The source line with ^^^ under columns col..col+width-1; long lines are cut to a window around it."""
    start = 0
    if len(line) > room:
        start = max(0, min(col - 1 - room // 3, len(line) - room))
    shown = line[start:start + room]
    prefix = "…" if start > 0 else ""
    suffix = "…" if start + room < len(line) else ""
    pad = " " * (col - 1 - start + len(prefix))
    return f"\n  {prefix}{shown}{suffix}\n  {pad}{'^' * max(1, width)}"


@dataclass(frozen=True)
class Arg:
    """One argument of a layer kind: name, type, default (``REQUIRED`` when none), aliases."""

    name: str
    type: str  # int | pos | pair | pad | bool | float | prob | choice:A|B
    default: Any = None
    aliases: tuple[str, ...] = ()
    positional: bool = True


REQUIRED = object()


@dataclass(frozen=True)
class Layer:
    """Base of every spec layer. ``src`` records where it was written (not part of equality)."""

    kind: ClassVar[str] = ""
    args: ClassVar[tuple[Arg, ...]] = ()
    has_body: ClassVar[bool] = False
    src: Source | None = field(default=None, compare=False, repr=False, kw_only=True)

    def values(self) -> dict[str, Any]:
        return {a.name: getattr(self, a.name) for a in self.args}

    def to_text(self) -> str:
        parts = []
        keyword = False
        for a in self.args:
            v = getattr(self, a.name)
            if a.default is not REQUIRED and v == a.default:
                keyword = True
                continue
            text = _value_text(v)
            if keyword or not a.positional or a.default is not REQUIRED:
                parts.append(f"{a.name}={text}")
                keyword = True
            else:
                parts.append(text)
        head = self.kind + (f"({','.join(parts)})" if parts else "")
        return head


def _value_text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, tuple):
        return f"{v[0]}x{v[1]}" if v[0] != v[1] else str(v[0])
    if isinstance(v, float):
        return repr(v)
    return str(v)


def _layer(kind: str, *args: Arg, body: bool = False):
    def deco(cls):
        cls.kind = kind
        cls.args = args
        cls.has_body = body
        return dataclass(frozen=True)(cls)

    return deco


@_layer("input", Arg("c", "pos", REQUIRED), Arg("h", "pos", REQUIRED), Arg("w", "pos", REQUIRED))
class Input(Layer):
    c: int = 0
    h: int = 0
    w: int = 0


@_layer("conv", Arg("out", "pos", REQUIRED), Arg("k", "pair", REQUIRED, ("kernel",)), Arg("s", "pair", 1, ("stride",)),
        Arg("p", "pad", 0, ("padding",)), Arg("d", "pair", 1, ("dilation",)), Arg("groups", "pos", 1, ("g",)),
        Arg("bias", "bool", True))
class Conv(Layer):
    out: int = 0
    k: Pair = 1
    s: Pair = 1
    p: Any = 0
    d: Pair = 1
    groups: int = 1
    bias: bool = True


@_layer("dwconv", Arg("k", "pair", REQUIRED, ("kernel",)), Arg("s", "pair", 1, ("stride",)), Arg("p", "pad", 0, ("padding",)),
        Arg("mult", "pos", 1, ("multiplier",)), Arg("d", "pair", 1, ("dilation",)), Arg("bias", "bool", True))
class DWConv(Layer):
    k: Pair = 1
    s: Pair = 1
    p: Any = 0
    mult: int = 1
    d: Pair = 1
    bias: bool = True


@_layer("sepconv", Arg("out", "pos", REQUIRED), Arg("k", "pair", REQUIRED, ("kernel",)), Arg("s", "pair", 1, ("stride",)),
        Arg("p", "pad", 0, ("padding",)), Arg("dw_bias", "bool", False), Arg("bias", "bool", True))
class SepConv(Layer):
    out: int = 0
    k: Pair = 1
    s: Pair = 1
    p: Any = 0
    dw_bias: bool = False
    bias: bool = True


@_layer("bn")
class BN(Layer):
    pass


ACTIVATIONS = {"relu": "ReLU", "sigmoid": "Sigmoid", "tanh": "Tanh", "gelu": "GELU", "silu": "SiLU",
               "relu6": "ReLU6"}


@dataclass(frozen=True)
class Act(Layer):
    name: str = "relu"

    kind: ClassVar[str] = "act"

    def to_text(self) -> str:
        return self.name


_POOL_ARGS = (Arg("k", "pair", REQUIRED, ("kernel",)), Arg("s", "pair", None, ("stride",)),
              Arg("p", "pair", 0, ("padding",)), Arg("ceil", "bool", False, ("ceil_mode",)))


@dataclass(frozen=True)
class _Pool(Layer):
    k: Pair = 2
    s: Pair | None = None  # None: the kernel
    p: Pair = 0
    ceil: bool = False


@_layer("maxpool", *_POOL_ARGS)
class MaxPool(_Pool):
    pass


@_layer("avgpool", *_POOL_ARGS)
class AvgPool(_Pool):
    pass


@_layer("gap")
class GAP(Layer):
    pass


@_layer("flatten")
class Flatten(Layer):
    pass


@_layer("fc", Arg("out", "pos", REQUIRED), Arg("bias", "bool", True), Arg("in", "pos", None, ("in_features",), False))
class FC(Layer):
    out: int = 0
    bias: bool = True
    # the input width, when the user writes it; convlab checks it against the shape
    in_: int | None = None

    def values(self) -> dict[str, Any]:
        return {"out": self.out, "bias": self.bias, "in": self.in_}

    def to_text(self) -> str:
        parts = [str(self.out)] + (["bias=false"] if not self.bias else []) + (
            [f"in={self.in_}"] if self.in_ is not None else [])
        return f"fc({','.join(parts)})"


@_layer("dropout", Arg("p", "prob", 0.5))
class Dropout(Layer):
    p: float = 0.5


@_layer("res", Arg("out", "pos", REQUIRED), Arg("s", "pos", 1, ("stride",)), Arg("shortcut", "choice:A|B|NONE", "B"))
class Res(Layer):
    out: int = 0
    s: int = 1
    shortcut: str = "B"


@_layer("bottleneck", Arg("mid", "pos", REQUIRED), Arg("s", "pos", 1, ("stride",)))
class Bottleneck(Layer):
    mid: int = 0
    s: int = 1


@_layer("residual", Arg("proj", "flag", False), body=True)
class Residual(Layer):
    proj: bool = False
    body: tuple[Layer, ...] = ()

    def to_text(self) -> str:
        from .text import to_text

        return f"residual{'(proj)' if self.proj else ''}[{to_text(self.body)}]"


@dataclass(frozen=True)
class Stage(Layer):
    """``[ ... ]`` written on its own: a named stage (``layer1``, ``layer2``, ...)."""

    kind: ClassVar[str] = "stage"
    body: tuple[Layer, ...] = ()

    def to_text(self) -> str:
        from .text import to_text

        return f"[{to_text(self.body)}]"


KINDS: dict[str, type[Layer]] = {cls.kind: cls for cls in (
    Input, Conv, DWConv, SepConv, BN, MaxPool, AvgPool, GAP, Flatten, FC, Dropout, Res, Bottleneck, Residual)}
ALIASES = {"linear": "fc", "dense": "fc", "batchnorm": "bn", "pool": "maxpool", "globalavgpool": "gap",
           "conv2d": "conv", "depthwise": "dwconv", "separable": "sepconv"}
VOCABULARY = sorted([*KINDS, *ACTIVATIONS, *ALIASES])


def field_name(arg: Arg) -> str:
    return "in_" if arg.name == "in" else arg.name

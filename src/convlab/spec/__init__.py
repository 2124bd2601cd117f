"""The spec language: a CNN in one line.

Grammar::

    spec   := item ( ('->' | '→' | ',' | whitespace) item )*
    item   := atom ( ('x' | '×') INT )?              repeat the atom INT times
    atom   := layer | '(' spec ')' | '[' spec ']'    ( ) groups for repeating; [ ] is a named stage
    layer  := NAME ( '(' args ')' )? ( '[' spec ']' )?     the trailing [..] is a block's body
    args   := arg (',' arg)* ;  arg := value | NAME '=' value ;  value := INT | FLOAT | NAME | INTxINT

Vocabulary (positional order as written; keywords always allowed):

    ==============================================  =================================================
    input(C, H, W)                                  the input shape (optional; else given to build)
    conv(out, k, s=1, p=0, d=1, groups=1, bias=true)  Conv2d; k/s/p/d may be 3x5; p may be same/valid
    dwconv(k, s=1, p=0, mult=1, d=1, bias=true)     depthwise Conv2d (groups = in channels)
    sepconv(out, k, s=1, p=0, dw_bias=false, bias=true)  Keras SeparableConv2D: depthwise + pointwise
    bn                                              BatchNorm2d (BatchNorm1d after flatten)
    relu sigmoid tanh gelu silu relu6               activations
    maxpool(k, s=k, p=0, ceil=false)                MaxPool2d
    avgpool(k, s=k, p=0, ceil=false)                AvgPool2d
    gap                                             global average pool to C×1×1
    flatten                                         C×H×W → C·H·W features
    fc(out, bias=true, in=auto)   (alias linear)    Linear; in_features comes from the shape
    dropout(p=0.5)                                  Dropout
    res(out, s=1, shortcut=B)                       basic residual block (A: zero-pad, B: 1x1 conv+bn)
    bottleneck(mid, s=1)                            bottleneck block, out = 4·mid
    residual[ body ] / residual(proj)[ body ]       adds the input (or its 1x1 projection) to body
    ==============================================  =================================================

Example, the small CIFAR net of the notes on fc layers::

    conv(16,3,p=1) relu maxpool(2) conv(32,3,p=1) relu maxpool(2) flatten fc(128) relu fc(10)
"""

from __future__ import annotations

import functools

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

from ..errors import SpecError
from .layers import (ACTIVATIONS, BN, FC, GAP, KINDS, VOCABULARY, Act, AvgPool, Bottleneck, Conv, DWConv, Dropout,
                     Flatten, Input, Layer, MaxPool, Res, Residual, SepConv, Stage)
from .parser import parse_structure, parse_text, signature
from .text import to_text

__all__ = ["Spec", "parse", "Layer", "Input", "Conv", "DWConv", "SepConv", "BN", "Act", "MaxPool", "AvgPool",
           "GAP", "Flatten", "FC", "Dropout", "Res", "Bottleneck", "Residual", "Stage", "KINDS", "ACTIVATIONS",
           "VOCABULARY", "signature"]


@dataclass(frozen=True)
class Spec:
    """A parsed model: its layers and, when the spec names one, the input shape (C, H, W)."""

    layers: tuple[Layer, ...]
    input_shape: tuple[int, int, int] | None = None

    def to_text(self) -> str:
        head = f"input({','.join(map(str, self.input_shape))}) " if self.input_shape else ""
        return head + to_text(self.layers)

    def __str__(self) -> str:
        return self.to_text()


SPEC_SUFFIXES = (".yaml", ".yml", ".json", ".spec", ".txt")


def _from_layers(layers: list[Layer]) -> Spec:
    shape = None
    inputs = [i for i, layer in enumerate(layers) if isinstance(layer, Input)]
    if inputs:
        if inputs != [0]:
            layer = layers[inputs[-1] if inputs[0] == 0 else inputs[0]]
            where = layer.src.where() + layer.src.caret() if layer.src else ""
            raise SpecError("input(C,H,W) may appear once, as the first layer" + where)
        first = layers.pop(0)
        shape = (first.c, first.h, first.w)
    if not layers:
        raise SpecError("the spec has no layers after input(...)")
    return Spec(tuple(layers), shape)


def parse(spec: Union[str, Path, Spec, list, dict]) -> Spec:
    """Parse a spec: one line of text, a path to a .yaml/.json/.spec file, or the YAML structure.

    >>> parse("conv(16,3,p=1) relu maxpool(2)").to_text()
    'conv(16,3,p=1) relu maxpool(2)'
    """
    if isinstance(spec, Spec):
        return spec
    if isinstance(spec, (list, dict)):
        return _from_layers(parse_structure(spec))
    path = Path(spec) if isinstance(spec, Path) or (isinstance(spec, str) and str(spec).endswith(SPEC_SUFFIXES)) else None
    if path is not None:
        text = read_spec_file(path)
        if path.suffix in (".yaml", ".yml", ".json"):
            return _from_layers(parse_structure(_load_structured(text, path), path.name))
        return _from_layers(parse_text(text))
    if not isinstance(spec, str):
        raise SpecError(f"a spec is text, a path or a list of layers, got {type(spec).__name__}")
    return _parse_inline(spec)


@functools.lru_cache(maxsize=128)
def _parse_inline(text: str) -> Spec:
    """A spec line, parsed once: a :class:`Spec` is frozen (its layers too), so the same text gives the same
    Spec object again (a summary, a plan or a build of the same spec skips the parse; errors are not kept)."""
    return _from_layers(parse_text(text))


def _shown(path) -> str:
    text = str(path)
    return repr(text if len(text) <= 80 else text[:60] + "…" + text[-15:])


def read_spec_file(path: Path) -> str:
    """A spec file's text: UTF-8, at most :data:`convlab.limits.MAX_SPEC_CHARS`; else a SpecError saying why."""
    from .. import limits

    try:
        if not path.is_file():
            raise SpecError(f"spec file {_shown(path)} does not exist")
        with open(path, "rb") as f:
            raw = f.read(4 * limits.MAX_SPEC_CHARS + 1)
    except OSError as e:  # a name too long for the file system, a folder, no permission
        raise SpecError(f"spec file {_shown(path)} cannot be read ({e.strerror or e})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SpecError(f"spec file {_shown(path)} is not UTF-8 text (byte {e.start}: {raw[e.start:e.start + 1]!r}); "
                        f"a spec file holds one spec line, or YAML/JSON") from None
    if len(text) > limits.MAX_SPEC_CHARS:
        raise SpecError(f"spec file {_shown(path)} is over convlab's limit of {limits.MAX_SPEC_CHARS:,} characters")
    if "\x00" in text:
        raise SpecError(f"spec file {_shown(path)} holds NUL bytes: it is not a text file")
    return text


_FLOW = re.compile(r'"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\n]|\'\')*\'|[\[\]{}]')


def _flow_nesting_over(text: str, limit: int) -> bool:
    """Whether JSON/YAML flow brackets ([ and {, quoted strings skipped) nest deeper than ``limit``."""
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    for m in _FLOW.finditer(text):
        c = m.group()
        if c in "[{":
            depth += 1
            if depth > limit:
                return True
        elif c in "]}":
            depth -= 1
    return False


def _load_structured(text: str, path: Path) -> Any:
    from .. import limits

    if len(text) > limits.MAX_SPEC_CHARS:
        raise SpecError(f"{path.name}: {len(text):,} characters, beyond convlab's limit of {limits.MAX_SPEC_CHARS:,}")
    if _flow_nesting_over(text, limits.MAX_NESTING):  # before the parser walks 100,000 brackets down
        raise SpecError(f"{path.name}: nested too deeply to read (convlab's limit is {limits.MAX_NESTING} "
                        f"levels)")
    try:
        if path.suffix == ".json":
            try:
                return json.loads(text)
            except json.JSONDecodeError as e:
                raise SpecError(f"{path.name}: not valid JSON: {e}") from None
        import yaml

        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise SpecError(f"{path.name}: not valid YAML: {str(e)[:300]}") from None
    except RecursionError:
        raise SpecError(f"{path.name}: nested too deeply to read (convlab's limit is {limits.MAX_NESTING} "
                        f"levels)") from None

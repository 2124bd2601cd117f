"""Spec dataclasses back to one line of text; runs of equal layers are written once with ``xN``."""

from __future__ import annotations

from typing import Sequence


def to_text(layers: Sequence) -> str:
    out: list[str] = []
    i = 0
    while i < len(layers):
        j = i + 1
        while j < len(layers) and layers[j] == layers[i]:
            j += 1
        t = layers[i].to_text()
        out.append(t if j - i == 1 else f"{t}x{j - i}" if t.endswith((")", "]")) else f"{t} x{j - i}")
        i = j
    return " ".join(out)

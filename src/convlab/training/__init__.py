"""Training: config, the loop, checkpoints, run directories and finished runs.

``TrainConfig`` and ``TrainingError`` are imported at once (neither needs torch), the loop's names on
first use, so ``convlab.training.config`` can be read (the CLI's choices) without importing torch.
``convlab.training.evaluate`` is the loop's evaluation function, whatever was imported before it.
"""

from __future__ import annotations

import importlib

from ..errors import TrainingError
from .config import TrainConfig

# name -> module that defines it; imported on first access
_LAZY = {"Run": ".loop", "evaluate": ".loop", "train": ".loop"}

__all__ = ["Run", "TrainConfig", "TrainingError", "evaluate", "train"]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_LAZY})

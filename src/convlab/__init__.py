"""convlab: design, check, inspect and train convolutional neural networks.

The top-level names are imported lazily, so ``import convlab`` (and ``convlab --help``,
``convlab size``) does not pay for importing torch until a torch-backed feature is used.
"""

from __future__ import annotations

import importlib

from .errors import ConvlabError, DataError, ShapeError, SpecError, UsageError
from .arith import (conv_out, conv_transpose_out, explain_chain, explain_conv, explain_conv_transpose,
                    explain_pool, pool_out, receptive_field, solve)

__version__ = "0.1.0"

# name -> module that defines it; imported on first access
_LAZY = {
    "parse": "convlab.spec",
    "Spec": "convlab.spec",
    "build": "convlab.builder",
    "summary": "convlab.analyze",
    "Summary": "convlab.analyze",
    "list_models": "convlab.zoo",
    "create_model": "convlab.factory",
    "scratch": "convlab.scratch",
    "train": "convlab.training",
    "TrainConfig": "convlab.training",
    "Run": "convlab.training",
    "load_dataset": "convlab.data",
    "fully_convolutional": "convlab.inspect",
    "activation_stats": "convlab.inspect",
    "gradcam": "convlab.inspect",
    "draw": "convlab.drawing",
    "Diagram": "convlab.drawing",
}

_MODULES = {"scratch"}
_RENAMED = {"load_dataset": "load"}

__all__ = [
    "ConvlabError", "DataError", "ShapeError", "SpecError", "UsageError", "conv_out", "pool_out",
    "conv_transpose_out", "explain_conv", "explain_pool", "explain_conv_transpose", "explain_chain",
    "solve", "receptive_field", "__version__", *_LAZY,
]


def __getattr__(name: str):
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name])
        value = module if name in _MODULES else getattr(module, _RENAMED.get(name, name))
        globals()[name] = value
        return value
    raise AttributeError(f"module 'convlab' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)

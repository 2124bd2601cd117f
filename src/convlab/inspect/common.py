"""Shared by the inspect modules: where a model lives, evaluation mode, class probabilities."""

from __future__ import annotations

import torch
import torch.nn as nn




def _first_param(model: nn.Module):
    return next(model.parameters(), None)


def _to_model(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    p = _first_param(model)
    return x.to(p.device, p.dtype) if p is not None else x


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


def predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Class probabilities (K,) for one image (C, H, W), in evaluation mode (a binary head: (1 − σ, σ))."""
    from ..training.report import probabilities

    return probabilities(model, x.unsqueeze(0))[0]


def predict_batch(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Class probabilities (N, K) for images (N, C, H, W), in evaluation mode (a binary head: (1 − σ, σ))."""
    from ..training.report import probabilities

    return probabilities(model, x)

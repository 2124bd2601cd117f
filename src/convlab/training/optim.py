"""The optimiser and its schedule: which parameters decay, SGD or AdamW, and the learning rate as a
function of the step."""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from .config import TrainConfig


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on conv/linear weights only; biases and norm parameters are not decayed."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.dim() > 1 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model: nn.Module, cfg: TrainConfig):
    """SGD (Nesterov when momentum > 0) or AdamW; PyTorch's fused kernels on CPU and CUDA (one kernel
    over all parameters instead of a string of per-tensor ops; the same metrics here)."""
    groups = param_groups(model, cfg.weight_decay)
    params = [p for g in groups for p in g["params"]]
    fused = bool(params) and all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.momentum, 0.999), fused=fused or None)
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0, fused=fused or None)


def lr_at(step: int, total: int, cfg: TrainConfig) -> float:
    """Learning rate after ``step`` of ``total`` optimizer steps, for a resolved config (see
    :func:`~convlab.training.config.with_family_defaults`): ``cfg.warmup`` is the warm-up that runs."""
    peak = cfg.lr
    t = min(step / max(total, 1), 1.0)
    w = cfg.warmup
    if cfg.schedule == "onecycle":  # linear rise over `warmup`, then linear fall to zero
        return peak * (t / w if t < w else max(0.0, (1 - t) / (1 - w)))
    if w and t < w:
        return peak * t / w
    if cfg.schedule == "cosine":
        u = (t - w) / (1 - w) if w else t
        return peak * 0.5 * (1 + math.cos(math.pi * u))
    if cfg.schedule in ("step", "paper"):  # ÷10 at 50% and at 75% of training (He et al. 2016)
        return peak * (0.1 ** ((t >= 0.5) + (t >= 0.75)))
    return peak

"""The optimiser and its schedule: which parameters decay, SGD or AdamW, and the learning rate as a
function of the step."""

from __future__ import annotations

import functools
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


def _undecorated(cls, name: str):
    """``cls.name`` without torch's wrapper, or None where this torch has none (``__wrapped__``)."""
    return getattr(getattr(cls, name), "__wrapped__", None)


@functools.cache
def eager_optimizer(cls: type) -> type:
    """``cls`` (a torch optimizer), minus the wrappers that import ``torch._dynamo`` on first use.

    torch wraps ``Optimizer.add_param_group``, ``zero_grad``, ``state_dict`` and ``load_state_dict`` in
    ``torch._disable_dynamo``, and every ``step`` in a wrapper that sets the grad mode and breaks a
    compiled graph; each imports ``torch._dynamo`` the first time it runs: 1.2-1.9 s of every ``convlab
    train`` on a 2-core CPU (a tenth of the demo's command). In eager mode the wrappers do nothing else,
    so this class calls the functions they wrap, under ``torch.no_grad()`` for ``step`` as torch's does:
    the same arithmetic, the same state dict (tests/test_recipes.py). convlab never calls an optimizer
    inside a compiled region (``--compile`` compiles the model's forward only). Where a torch build has
    no ``__wrapped__`` the wrapped methods are used as they are."""
    from torch.optim import Optimizer

    raw = {n: _undecorated(Optimizer, n) for n in ("add_param_group", "zero_grad", "state_dict", "load_state_dict")}
    raw_step = _undecorated(cls, "step")
    body: dict = {"__doc__": f"torch.optim.{cls.__name__}, stepping without importing torch._dynamo (see convlab's eager_optimizer)"}
    if all(raw.values()) and raw_step is not None:
        body.update(raw)  # the wrapped functions themselves, as methods

        def step(self, closure=None):
            with torch.no_grad():
                return raw_step(self, closure)

        body["step"] = step
    return type(cls.__name__, (cls,), body)


def make_optimizer(model: nn.Module, cfg: TrainConfig):
    """SGD (Nesterov when momentum > 0) or AdamW; PyTorch's fused kernels on CPU and CUDA (one kernel
    over all parameters instead of a string of per-tensor ops; the same metrics here)."""
    groups = param_groups(model, cfg.weight_decay)
    params = [p for g in groups for p in g["params"]]
    fused = bool(params) and all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
    if cfg.optimizer == "adamw":
        return eager_optimizer(torch.optim.AdamW)(groups, lr=cfg.lr, betas=(cfg.momentum, 0.999), fused=fused or None)
    return eager_optimizer(torch.optim.SGD)(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0,
                                            fused=fused or None)


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

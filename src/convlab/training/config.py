"""Training configuration: one typed dataclass, filled by the CLI or a YAML file in one place, resolved
with per-family defaults, and saved with every run."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Optional

from ..errors import UsageError

SCHEDULES = ("onecycle", "cosine", "step", "paper", "constant")
OPTIMIZERS = ("sgd", "adamw")
PRECISIONS = ("fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda", "mps")
INITS = ("default", "xavier", "kaiming")


@dataclass
class TrainConfig:
    """Everything a run depends on. ``None`` means "the default for this model family" (see
    :func:`with_family_defaults`)."""

    model: str = "lenet-modern"            # zoo name, spec text, spec file or package.module:attr
    data: str = "fashion-mnist"            # dataset name or folder:PATH
    data_dir: Optional[str] = None         # where to look for the dataset first
    epochs: Optional[int] = None           # passes over the training set
    batch_size: Optional[int] = None       # global batch (split across distributed ranks)
    optimizer: Optional[str] = None        # sgd (with Nesterov momentum) | adamw
    lr: Optional[float] = None             # peak learning rate for the whole (global) batch
    momentum: Optional[float] = None       # SGD momentum / AdamW beta1
    weight_decay: Optional[float] = None   # L2 on conv/linear weights (not on biases or norm parameters)
    schedule: Optional[str] = None         # onecycle | cosine | step | paper | constant
    warmup: Optional[float] = None         # fraction of the steps warming up linearly (onecycle: rise, 0 → 0.25)
    label_smoothing: Optional[float] = None  # cross-entropy label smoothing, 0..1
    augment: Optional[str] = None          # crop=N,flip,cutout=N | none; None: the dataset's default
    resize: Optional[int] = None           # train and test at resize×resize (e.g. 96 or 224 for d2l's nets)
    init: Optional[str] = None             # default (torch's) | xavier (d2l's init_cnn) | kaiming: conv/linear weights
    recipe: Optional[str] = None           # a named recipe (d2l) in place of the model family's; see RECIPES
    device: str = "auto"                   # auto | cpu | cuda | mps
    precision: str = "fp32"                # fp32 | bf16 | fp16 (autocast; fp16 uses a grad scaler)
    channels_last: Optional[bool] = None   # NHWC memory format (default: on)
    compile: bool = False                  # torch.compile the model
    seed: int = 0                          # seeds init, batch order, augmentation and dropout
    max_steps: Optional[int] = None        # stop after this many optimizer steps (quick checks)
    eval_every: int = 1                    # evaluate on the test split every N epochs (and at the end)
    log_every: Optional[int] = None        # every N steps (and at step 1): loss, error, gradient norms -> steps.jsonl
    threads: Optional[int] = None          # CPU threads for torch (default: torch's choice)
    out: Optional[str] = None              # run directory (default: runs/NNN-model-data)
    overrides: dict = field(default_factory=dict)  # zoo options, e.g. {"shortcut": "B"}

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            from ..errors import did_you_mean

            hints = [u + did_you_mean(u, known, 1) for u in sorted(unknown)]
            raise UsageError(f"unknown config key(s): {', '.join(hints)}")
        return cls(**d)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "TrainConfig":
        import yaml

        p = Path(path)
        if not p.is_file():
            raise UsageError(f"config file {str(p)!r} does not exist")
        try:
            d = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise UsageError(f"{p}: not valid YAML: {e}") from None
        if not isinstance(d, dict):
            raise UsageError(f"{p}: expected a mapping of config keys")
        return cls.from_dict(d)


# Per-family recipes. Sources: He et al. 2016 §4.2 for the CIFAR ResNets (SGD 0.1, momentum 0.9,
# wd 1e-4, batch 128, lr/10 at 50% and 75%); the small-CNN recipe (SGD+Nesterov one-cycle, label
# smoothing 0.1, flips) is the lean loop measured on Fashion-MNIST in the project's reference notes.
FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    "small": dict(epochs=8, batch_size=256, optimizer="sgd", lr=0.2, momentum=0.9, weight_decay=5e-4,
                  schedule="onecycle", warmup=0.25, label_smoothing=0.1),
    "resnet-cifar": dict(epochs=30, batch_size=128, optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=1e-4,
                         schedule="paper", warmup=0.0, label_smoothing=0.0),
    "plain-cifar": dict(epochs=30, batch_size=128, optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=1e-4,
                        schedule="paper", warmup=0.0, label_smoothing=0.0),
    "large": dict(epochs=10, batch_size=128, optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=5e-4,
                  schedule="onecycle", warmup=0.2, label_smoothing=0.1),
}
# Named recipes, chosen with --recipe; each one sets every optimisation field, so the family's recipe
# does not leak into it. d2l: d2l 1.0.3's Trainer as the book runs LeNet (7.6.2) — Classifier's
# configure_optimizers is plain SGD(params, lr) (no momentum, no weight decay), a constant lr of 0.1,
# FashionMNIST(batch_size=128) without augmentation, Trainer(max_epochs=10), cross-entropy without
# label smoothing, and init_cnn (Xavier-uniform on conv and linear weights). The book trains VGG (8.2)
# and ResNet-18 (8.6) the same way with lr 0.01: RECIPE_BY_FAMILY holds that.
RECIPES: dict[str, dict[str, Any]] = {
    "d2l": dict(epochs=10, batch_size=128, optimizer="sgd", lr=0.1, momentum=0.0, weight_decay=0.0,
                schedule="constant", warmup=0.0, label_smoothing=0.0, augment="none", init="xavier"),
}
RECIPE_BY_FAMILY: dict[tuple[str, str], dict[str, Any]] = {("d2l", "large"): dict(lr=0.01)}
FAMILY_OF = {"lenet": "small", "cnn": "small", "sepnet": "small", "resnet-cifar": "resnet-cifar",
             "plain-cifar": "plain-cifar", "resnet": "large", "vgg": "large", "mobilenet": "large"}


ONECYCLE_WARMUP = 0.25  # one-cycle's rise when no warm-up is given: it has to rise from 0 over some steps


def with_family_defaults(cfg: TrainConfig, family: str | None) -> TrainConfig:
    """A copy with every ``None`` filled from the family's recipe, the values checked. The result is
    what runs and what config.yaml records: a one-cycle schedule given no warm-up (0 or unset) gets
    ``ONECYCLE_WARMUP``, the rise the schedule then takes."""
    if cfg.recipe is not None and cfg.recipe not in RECIPES:
        from ..errors import did_you_mean

        raise UsageError(f"--recipe {cfg.recipe!r} is not a recipe{did_you_mean(cfg.recipe, RECIPES, 1)} "
                         f"(recipes: {', '.join(RECIPES)}; leave it out for the model family's)")
    fam = FAMILY_OF.get(family or "", "small")
    recipe = ({**RECIPES[cfg.recipe], **RECIPE_BY_FAMILY.get((cfg.recipe, fam), {})} if cfg.recipe
              else FAMILY_DEFAULTS[fam])
    out = dataclasses.replace(cfg)
    for k, v in recipe.items():
        if getattr(out, k) is None:
            setattr(out, k, v)
    if out.init is None:
        out.init = "default"
    if out.schedule == "onecycle" and out.warmup == 0:
        out.warmup = ONECYCLE_WARMUP
    if out.channels_last is None:
        out.channels_last = True
    _check(out)
    return out


def _check(c: TrainConfig) -> None:
    def need(ok: bool, msg: str):
        if not ok:
            raise UsageError(msg)

    need(c.epochs >= 1, f"--epochs must be >= 1, got {c.epochs}")
    need(c.batch_size >= 1, f"--batch-size must be >= 1, got {c.batch_size}")
    need(c.optimizer in OPTIMIZERS, f"--optimizer must be one of {', '.join(OPTIMIZERS)}, got {c.optimizer!r}")
    need(c.lr > 0, f"--lr must be > 0, got {c.lr}")
    need(0 <= c.momentum < 1, f"--momentum must be in [0, 1), got {c.momentum}")
    need(c.weight_decay >= 0, f"--weight-decay must be >= 0, got {c.weight_decay}")
    need(c.schedule in SCHEDULES, f"--schedule must be one of {', '.join(SCHEDULES)}, got {c.schedule!r}")
    need(0 <= c.warmup < 1, f"--warmup is a fraction of the steps in [0, 1), got {c.warmup}")
    need(0 <= c.label_smoothing < 1, f"--label-smoothing must be in [0, 1), got {c.label_smoothing}")
    need(c.init in INITS, f"--init must be one of {', '.join(INITS)}, got {c.init!r}")
    need(c.device in DEVICES, f"--device must be one of {', '.join(DEVICES)}, got {c.device!r}")
    need(c.precision in PRECISIONS, f"--precision must be one of {', '.join(PRECISIONS)}, got {c.precision!r}")
    need(c.resize is None or c.resize >= 1, f"--resize must be >= 1, got {c.resize}")
    need(c.max_steps is None or c.max_steps >= 1, f"--max-steps must be >= 1, got {c.max_steps}")
    need(c.log_every is None or c.log_every >= 1, f"--log-every must be >= 1, got {c.log_every}")
    need(c.eval_every >= 1, f"--eval-every must be >= 1, got {c.eval_every}")
    need(c.threads is None or c.threads >= 1, f"--threads must be >= 1, got {c.threads}")

"""Training configuration: one typed dataclass, filled by the CLI or a YAML file in one place, resolved
with per-family defaults, and saved with every run."""

from __future__ import annotations

import dataclasses
import math
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
    eval_every: Optional[int] = None       # evaluate on the test split every N epochs and after the last;
                                           # None: after the last only (after every epoch with target_acc)
    target_acc: Optional[float] = None     # stop after the first evaluation at or above this test accuracy (0..1]
    test_flip: Optional[bool] = None       # score each test image as the mean of it and its mirror image;
                                           # None: the family's default where the training flips (small CNNs)
    log_every: Optional[int] = None        # every N steps (and at step 1): loss, error, gradient norms -> steps.jsonl
    threads: Optional[int] = None          # CPU threads for torch (default: torch's choice)
    out: Optional[str] = None              # run directory (default: runs/NNN-model-data)
    overrides: dict = field(default_factory=dict)  # zoo options, e.g. {"shortcut": "B"}

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d, source: str | None = None, require=(), error=UsageError) -> "TrainConfig":
        """A config from a mapping, every key and value type checked here (the one place configs are
        validated). ``source`` names the file the mapping came from (a config file, a run's config.yaml or
        checkpoint) in the messages; ``require`` lists keys that must be present; ``error`` is the error
        class raised (a UsageError for the user's own config, a RunError for a run's files)."""
        where = f"{source}: " if source else ""
        if not isinstance(d, dict):
            raise error(f"{where}expected a mapping of config keys (key: value lines), got "
                        f"{_kind(d)}")
        known = {f.name for f in fields(cls)}
        unknown = [k for k in d if k not in known]
        if unknown:
            from ..errors import did_you_mean

            hints = [str(u) + did_you_mean(str(u), known, 1) for u in unknown]
            raise error(f"{where}unknown config key(s): {', '.join(hints)}")
        missing = [k for k in require if k not in d]
        if missing:
            raise error(f"{where}the config lacks the key(s) {', '.join(map(repr, missing))} "
                        f"(expected: {'; '.join(f'{k}: {_TYPES[k][1]}' for k in missing)})")
        for k, v in d.items():
            check_value(k, v, where, error)
        return cls(**d)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "TrainConfig":
        import yaml

        p = Path(path)
        if not p.is_file():
            raise UsageError(f"config file {str(p)!r} does not exist")
        try:
            d = yaml.safe_load(p.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            raise UsageError(f"{p}: not valid YAML: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
        return cls.from_dict({} if d is None else d, source=str(p))


def _kind(v) -> str:
    if isinstance(v, str):
        return f"the text {v[:40]!r}"
    if isinstance(v, (list, tuple)):
        return f"a list ({len(v)} item(s))"
    if isinstance(v, dict):
        return "a mapping"
    return f"{type(v).__name__} {v!r}"[:60]


# The type of every key: (allowed kinds, what to write). "int" excludes booleans; "float" takes ints.
_TYPES: dict[str, tuple[tuple[str, ...], str]] = {
    "model": (("str",), "a zoo name, spec text, spec file or package.module:attr"),
    "data": (("str",), "a dataset name or folder:PATH"),
    "data_dir": (("str", "none"), "a folder, or nothing"),
    "epochs": (("int", "none"), "a whole number of epochs, e.g. 8"),
    "batch_size": (("int", "none"), "a whole number of images, e.g. 128"),
    "optimizer": (("str", "none"), "sgd or adamw"),
    "lr": (("float", "none"), "a number, e.g. 0.1"),
    "momentum": (("float", "none"), "a number in [0, 1), e.g. 0.9"),
    "weight_decay": (("float", "none"), "a number >= 0, e.g. 0.0005"),
    "schedule": (("str", "none"), "onecycle, cosine, step, paper or constant"),
    "warmup": (("float", "none"), "a fraction of the steps in [0, 1), e.g. 0.1"),
    "label_smoothing": (("float", "none"), "a number in [0, 1), e.g. 0.1"),
    "augment": (("str", "none"), "crop=N,flip,cutout=N or none"),
    "resize": (("int", "none"), "a whole number of pixels, e.g. 96"),
    "init": (("str", "none"), "default, xavier or kaiming"),
    "recipe": (("str", "none"), "a recipe name (d2l), or nothing"),
    "device": (("str",), "auto, cpu, cuda or mps"),
    "precision": (("str",), "fp32, bf16 or fp16"),
    "channels_last": (("bool", "none"), "true or false"),
    "compile": (("bool",), "true or false"),
    "seed": (("int",), "a whole number, e.g. 0"),
    "max_steps": (("int", "none"), "a whole number of steps, or nothing"),
    "eval_every": (("int", "none"), "a whole number of epochs, e.g. 1, or nothing (after the last epoch only)"),
    "target_acc": (("float", "none"), "a test accuracy in (0, 1], e.g. 0.91, or nothing"),
    "test_flip": (("bool", "none"), "true or false, or nothing (the family's default)"),
    "log_every": (("int", "none"), "a whole number of steps, or nothing"),
    "threads": (("int", "none"), "a whole number of CPU threads, or nothing"),
    "out": (("str", "none"), "a folder, or nothing"),
    "overrides": (("dict",), "a mapping of zoo options, e.g. {shortcut: B}"),
}


def _is(v, kind: str) -> bool:
    if kind == "none":
        return v is None
    if kind == "bool":
        return isinstance(v, bool)
    if kind == "int":
        return isinstance(v, int) and not isinstance(v, bool)
    if kind == "float":
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if kind == "str":
        return isinstance(v, str)
    return isinstance(v, dict)


def check_value(key: str, value, where: str = "", error=UsageError) -> None:
    """A ``error`` naming the file, the key and what was expected where ``value`` has the wrong type."""
    kinds, want = _TYPES[key]
    if any(_is(value, k) for k in kinds):
        if key == "overrides" and not all(isinstance(k, str) for k in value):
            raise error(f"{where}key 'overrides': expected {want}, got keys that are not names")
        return
    hint = ""
    if isinstance(value, str) and ("float" in kinds or "int" in kinds):
        try:
            float(value)
            hint = (f" — write it without quotes" if not any(c in value.lower() for c in "e")
                    else " — YAML reads a number like 1e-3 without a dot as text: write 1.0e-3 or 0.001")
        except ValueError:
            hint = " — write it in digits"
    elif "int" in kinds and isinstance(value, float) and value.is_integer():
        hint = f" — write {int(value)}"
    raise error(f"{where}key {key!r}: expected {want}, got {_kind(value)}{hint}")


# Per-family recipes. Sources: He et al. 2016 §4.2 for the CIFAR ResNets (SGD 0.1, momentum 0.9,
# wd 1e-4, batch 128, lr/10 at 50% and 75%); the small-CNN recipe (SGD+Nesterov one-cycle, label
# smoothing 0.1, flips) is the lean loop measured on Fashion-MNIST in the project's reference notes.
FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    "small": dict(epochs=8, batch_size=256, optimizer="sgd", lr=0.2, momentum=0.9, weight_decay=5e-4,
                  schedule="onecycle", warmup=0.25, label_smoothing=0.1, test_flip=True),
    # the zoo's fastcnn: the small-CNN recipe, short and hot — 3 epochs at lr 0.4, which its BatchNorm
    # takes (bench/time_to_accuracy.py: 91% on Fashion-MNIST on every seed 0-4)
    "fast": dict(epochs=3, batch_size=256, optimizer="sgd", lr=0.4, momentum=0.9, weight_decay=5e-4,
                 schedule="onecycle", warmup=0.25, label_smoothing=0.1, test_flip=True),
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
                schedule="constant", warmup=0.0, label_smoothing=0.0, augment="none", init="xavier",
                test_flip=False),
}
RECIPE_BY_FAMILY: dict[tuple[str, str], dict[str, Any]] = {("d2l", "large"): dict(lr=0.01)}
FAMILY_OF = {"lenet": "small", "cnn": "small", "fastcnn": "fast", "sepnet": "small", "resnet-cifar": "resnet-cifar",
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
    if out.test_flip is None:
        out.test_flip = False
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
    need(c.lr > 0 and math.isfinite(c.lr), f"--lr must be a finite number > 0, got {c.lr}")
    need(0 <= c.momentum < 1, f"--momentum must be in [0, 1), got {c.momentum}")
    need(0 <= c.weight_decay < math.inf, f"--weight-decay must be a finite number >= 0, got {c.weight_decay}")
    need(c.schedule in SCHEDULES, f"--schedule must be one of {', '.join(SCHEDULES)}, got {c.schedule!r}")
    need(0 <= c.warmup < 1, f"--warmup is a fraction of the steps in [0, 1), got {c.warmup}")
    need(0 <= c.label_smoothing < 1, f"--label-smoothing must be in [0, 1), got {c.label_smoothing}")
    need(c.init in INITS, f"--init must be one of {', '.join(INITS)}, got {c.init!r}")
    need(c.device in DEVICES, f"--device must be one of {', '.join(DEVICES)}, got {c.device!r}")
    need(c.precision in PRECISIONS, f"--precision must be one of {', '.join(PRECISIONS)}, got {c.precision!r}")
    need(c.resize is None or c.resize >= 1, f"--resize must be >= 1, got {c.resize}")
    need(c.max_steps is None or c.max_steps >= 1, f"--max-steps must be >= 1, got {c.max_steps}")
    need(c.log_every is None or c.log_every >= 1, f"--log-every must be >= 1, got {c.log_every}")
    need(c.eval_every is None or c.eval_every >= 1, f"--eval-every must be >= 1, got {c.eval_every}")
    need(c.target_acc is None or 0 < c.target_acc <= 1,
         f"--target-acc is a test accuracy as a fraction in (0, 1], got {c.target_acc}"
         + (f"; for {c.target_acc:g}% write --target-acc {c.target_acc / 100:g}"
            if c.target_acc is not None and 1 < c.target_acc <= 100 else ""))
    need(c.threads is None or c.threads >= 1, f"--threads must be >= 1, got {c.threads}")

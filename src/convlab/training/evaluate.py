"""``convlab eval``: accuracy, per-class accuracy and a confusion matrix for a run or checkpoint."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import UsageError
from .checkpoint import load_checkpoint
from .config import TrainConfig
from .loop import Dist, make_model, pick_device


@dataclass
class LoadedRun:
    """A trained model back from its run directory or checkpoint, with its data and config."""

    model: torch.nn.Module
    cfg: TrainConfig
    ds: object
    checkpoint: Path
    run_dir: Path
    device: torch.device


def load_run(run: str, data: str | None = None, data_dir: str | None = None, device: str = "auto") -> LoadedRun:
    """The model of a run directory (its best.pt, else last.pt) or of a checkpoint file, in eval mode."""
    from ..data import load

    path = Path(run)
    if path.is_dir():
        ckpt = path / "best.pt" if (path / "best.pt").is_file() else path / "last.pt"
        run_dir = path
    else:
        ckpt, run_dir = path, path.parent
    if not ckpt.is_file():
        raise UsageError(f"{run}: no checkpoint (expected a run directory with best.pt/last.pt, or a .pt file)")
    state = load_checkpoint(ckpt)
    cfg = TrainConfig.from_dict(state["config"])
    ds = load(data or cfg.data, data_dir or cfg.data_dir)
    c, h, w = ds.shape
    if cfg.resize:
        h = w = cfg.resize
    dev = pick_device(device, Dist())
    model, _, _ = make_model(cfg, (c, h, w), ds.num_classes)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        raise UsageError(f"{ckpt}: its weights do not fit {cfg.model} on {ds.name} "
                         f"({str(e).splitlines()[0]})") from None
    model.to(dev).eval()
    return LoadedRun(model, cfg, ds, ckpt, run_dir, dev)


def evaluate_run(run: str, data: str | None = None, data_dir: str | None = None, split: str = "test",
                 device: str = "auto", out: str | None = None) -> dict:
    from ..data import Batcher
    from ..viz import plot_confusion

    r = load_run(run, data, data_dir, device)
    model, cfg, ds, ckpt, run_dir, dev = r.model, r.cfg, r.ds, r.checkpoint, r.run_dir, r.device
    x, y = (ds.test_x, ds.test_y) if split == "test" else (ds.train_x, ds.train_y)
    batches = Batcher(x, y, ds.mean, ds.std, batch_size=512, device=dev, resize=cfg.resize)
    n = ds.num_classes
    confusion = torch.zeros(n, n, dtype=torch.long)
    with torch.no_grad():
        for xb, yb in batches:
            pred = model(xb).argmax(1)
            confusion += torch.bincount((yb * n + pred).cpu(), minlength=n * n).view(n, n)
    total = int(confusion.sum())
    per_class = (confusion.diag().float() / confusion.sum(1).clamp(min=1).float()).tolist()
    target = Path(out) if out else run_dir
    target.mkdir(parents=True, exist_ok=True)
    result = {"model": cfg.model, "data": ds.name, "split": split, "checkpoint": str(ckpt), "n": total,
              "accuracy": float(confusion.diag().sum()) / max(total, 1), "classes": ds.classes,
              "per_class_accuracy": per_class, "confusion": confusion.tolist(),
              "confusion_png": str(target / f"confusion-{split}.png"), "json": str(target / f"eval-{split}.json")}
    plot_confusion(confusion.numpy(), ds.classes, target / f"confusion-{split}.png",
                   title=f"{cfg.model} on {ds.name} ({split}): {100 * result['accuracy']:.2f}%")
    (target / f"eval-{split}.json").write_text(json.dumps(result, indent=2))
    return result

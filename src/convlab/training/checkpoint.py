"""Checkpoints of plain types only (loadable with ``torch.load(weights_only=True)``), written atomically."""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import ConvlabError
from ..fileio import atomic_open


def _unwrap(model):
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


def save_checkpoint(path: Path, model, optimizer, scaler, cfg, *, epoch: int, batch: int, step: int,
                    best_acc: float, partial) -> None:
    """Write model, optimizer, schedule position, RNG states and config to ``path`` through the one writer
    (:mod:`convlab.fileio`), so a crash never leaves a half-written checkpoint under the real name."""
    from .. import __version__

    state = {
        "model": _unwrap(model).state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": {"step": step},
        "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
        "epoch": epoch,              # epochs completed
        "batch": batch,              # batches completed in the epoch after those
        "partial": [float(partial[0]), int(partial[1]), int(partial[2])],  # loss sum, correct, seen so far
        "best_acc": float(best_acc),
        "rng": {"torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
        "config": cfg.to_dict(),
        "version": __version__,
    }
    with atomic_open(path) as f:
        torch.save(state, f)


def load_checkpoint(path: Path, map_location="cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConvlabError(f"no checkpoint at {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # a corrupt file or one holding arbitrary objects
        raise ConvlabError(f"{path}: cannot load the checkpoint safely ({type(e).__name__}: "
                           f"{str(e).splitlines()[0] if str(e) else ''})") from None

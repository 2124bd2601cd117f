"""Checkpoints of plain types only (loadable with ``torch.load(weights_only=True)``), written atomically,
and checked when read back: a checkpoint is data, never code.

Besides the weights and the optimizer, a checkpoint records how to rebuild its model without running
anything named in it: ``spec`` holds the resolved spec text (zoo and spec models, rebuilt from it), and
``module`` the ``package.module:attr`` a Python model came from — imported only when the user names it
again on the command line (:func:`model_source`).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from ..errors import RunError
from ..fileio import atomic_open


def _unwrap(model):
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


def save_checkpoint(path: Path, model, optimizer, scaler, cfg, *, epoch: int, batch: int, step: int,
                    best_acc: float, partial, spec: str | None = None, module: str | None = None) -> None:
    """Write model, optimizer, schedule position, RNG states and config to ``path`` through the one writer
    (:mod:`convlab.fileio`), so a crash never leaves a half-written checkpoint under the real name.
    ``spec`` is the model's resolved spec text, ``module`` the import path of a Python model."""
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
        "spec": spec,                # the resolved spec text: the model is rebuilt from it
        "module": module,            # package.module:attr of a Python model (imported only when named again)
        "version": __version__,
    }
    with atomic_open(path) as f:
        torch.save(state, f)


# what a convlab checkpoint holds: key -> (test, what was expected)
_KEYS = {
    "model": (lambda v: isinstance(v, dict) and all(isinstance(t, torch.Tensor) for t in v.values()),
              "the model's state_dict (a mapping of tensors)"),
    "optimizer": (lambda v: isinstance(v, dict), "the optimizer's state_dict"),
    "scheduler": (lambda v: isinstance(v, dict) and _int(v.get("step")) and v["step"] >= 0,
                  "{'step': optimizer steps taken}"),
    "epoch": (lambda v: _int(v) and v >= 0, "the number of epochs completed"),
    "batch": (lambda v: _int(v) and v >= 0, "the number of batches completed in the next epoch"),
    "partial": (lambda v: isinstance(v, (list, tuple)) and len(v) == 3
                and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v),
                "[loss sum, correct, seen] of the unfinished epoch"),
    "best_acc": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), "the best test accuracy"),
    "rng": (lambda v: isinstance(v, dict) and isinstance(v.get("torch"), torch.Tensor), "the RNG states"),
    "config": (lambda v: isinstance(v, dict), "the run's config (a mapping)"),
}


def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_checkpoint(state, path: Path) -> dict:
    """``state`` if it is a convlab checkpoint; else a RunError naming the file, the key and what was expected
    (a plain state_dict, a list, a checkpoint of another program)."""
    if isinstance(state, dict) and state and all(isinstance(v, torch.Tensor) for v in state.values()):
        first = ", ".join(list(map(str, state))[:3])
        raise RunError(f"{path} holds a plain state_dict (weights only: {first}, ...), not a convlab checkpoint: "
                       f"convlab eval/viz/inspect/--resume need the last.pt or best.pt that convlab train writes "
                       f"(it also records the model and config); load these weights in Python with "
                       f"model.load_state_dict(torch.load(path, weights_only=True))")
    if not isinstance(state, dict):
        raise RunError(f"{path}: expected a convlab checkpoint (a mapping with model, optimizer, config, ...), "
                       f"got {type(state).__name__}")
    for key, (ok, want) in _KEYS.items():
        if key not in state:
            raise RunError(f"{path}: not a convlab checkpoint: the key {key!r} is missing (expected {want}); "
                           f"it holds {', '.join(map(repr, list(state)[:6]))}")
        if not ok(state[key]):
            raise RunError(f"{path}: key {key!r}: expected {want}, got {type(state[key]).__name__}")
    for key in ("spec", "module"):
        if state.get(key) is not None and not isinstance(state[key], str):
            raise RunError(f"{path}: key {key!r}: expected text or nothing, got {type(state[key]).__name__}")
    return state


def load_checkpoint(path: Path, map_location="cpu") -> dict:
    """A checkpoint read with ``weights_only=True`` (no object in it can run code) and checked
    (:func:`check_checkpoint`); a RunError where it is missing, corrupt or not convlab's."""
    path = Path(path)
    if not path.is_file():
        raise RunError(f"no checkpoint at {path}")
    try:
        with warnings.catch_warnings():  # torch warns on some damaged files before it raises: the error says it
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # a corrupt file or one holding arbitrary objects
        raise RunError(f"{path}: cannot load the checkpoint safely ({type(e).__name__}: "
                       f"{str(e).splitlines()[0] if str(e) else ''})") from None
    return check_checkpoint(state, path)


def checkpoint_config(state: dict, path: Path):
    """The TrainConfig saved in a checkpoint, every key checked (a RunError naming the file and the key)."""
    from .config import TrainConfig

    return TrainConfig.from_dict(state["config"], source=f"{path} (its config)",
                                 require=("model", "data", "epochs", "batch_size", "lr"), error=RunError)


def model_source(state: dict, cfg, path: Path, named=None):
    """What to build a checkpoint's model from, without importing anything the checkpoint names.

    ``named`` is the MODEL the user gave on the command line (or a module given in Python), if any. A spec
    or zoo run is rebuilt from its recorded spec text (checkpoints of older versions: from the zoo name or
    inline spec in its config, nothing else). A Python model's ``package.module:attr`` is imported only when
    the user names it again (``named``); otherwise a RunError says how."""
    from ..factory import resolve_model

    if named is not None:
        if not isinstance(named, str):
            return named  # an nn.Module (or ModelRef) given in Python: the caller's own
        recorded = state.get("module") or cfg.model
        if state.get("spec") is None and named.strip() != recorded.strip():
            raise RunError(f"{path} was trained with the model {recorded[:80]!r}, not {named[:80]!r}: a run "
                           f"continues, and its weights load into, the model it was trained with")
        if state.get("spec") is not None and named.strip() not in (cfg.model.strip(), state["spec"].strip()):
            raise RunError(f"{path} was trained with the model {cfg.model[:80]!r}, not {named[:80]!r}; leave "
                           f"MODEL/--model out (the run rebuilds its own model from the spec it recorded)")
        return resolve_model(named, overrides=cfg.overrides or None) if state.get("spec") is None else \
            resolve_model(state["spec"], trusted=False)
    if state.get("spec") is not None:
        return resolve_model(state["spec"], trusted=False)
    module = state.get("module")
    if module:
        raise RunError(f"{path}: its model is Python code ({module!r}); convlab never imports code named in a run "
                       f"directory: name it again to use it, e.g. --model {module}")
    try:
        return resolve_model(cfg.model, overrides=cfg.overrides or None, trusted=False)
    except Exception as e:  # an import path or a file name recorded in an older run: say how to name it
        from ..errors import ConvlabError

        if not isinstance(e, ConvlabError):
            raise
        raise RunError(f"{path}: {e}") from None

"""The run directory, written and read back in this one place.

    config.yaml                            the resolved TrainConfig
    model.spec                             the spec text (spec and zoo models)
    summary.txt, summary.json              the model's summary
    metrics.jsonl, metrics.csv             one row per epoch, the columns METRIC_KEYS
    steps.jsonl                            with log_every: a row every k steps (loss, error, gradient norms)
    last.pt, best.pt                       checkpoints: after every epoch; of the best epoch
    curves.png                             loss and accuracy per epoch
    confusion-SPLIT.png, eval-SPLIT.json   convlab eval
    filters-LAYER.png, maps-SPLIT-N.png    convlab viz
    report.html                            convlab report
    .convlab-run                           marks the folder as a convlab run (what may be written in it)
    .convlab.lock                          while a run trains: pid, host and start time of its process

Everything read back is checked here (:meth:`RunDir.read_metrics`, :meth:`RunDir.read_config`, ...): a file
that is not what convlab wrote is a RunError naming the file, the line or key, and what was expected.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import shutil
import sys
from pathlib import Path

from ..errors import RunError, UsageError
from ..fileio import _TEMP, atomic_open, remove_stale_temps, write_text
from .lock import RunLock

METRIC_KEYS = ["epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "images_per_s", "epoch_s", "wall_s"]


class RunDir:
    """One run's directory: where each of its files lives, how it is created, appended to and read."""

    def __init__(self, path: Path):
        self.path = Path(path)

    # -- the layout

    @property
    def last(self) -> Path:
        """The checkpoint written after every epoch (and on Ctrl-C): what ``--resume`` continues from."""
        return self.path / "last.pt"

    @property
    def best(self) -> Path:
        """A copy of last.pt from the epoch with the best test accuracy."""
        return self.path / "best.pt"

    @property
    def checkpoint(self) -> Path:
        """The checkpoint a finished run is judged by: best.pt, else last.pt."""
        return self.best if self.best.is_file() else self.last

    @property
    def curves(self) -> Path:
        return self.path / "curves.png"

    def confusion_png(self, split: str) -> Path:
        return self.path / f"confusion-{split}.png"

    def eval_json(self, split: str) -> Path:
        return self.path / f"eval-{split}.json"

    def filters_png(self, layer: str) -> Path:
        return self.path / f"filters-{layer}.png"

    def maps_png(self, split: str, index: int) -> Path:
        return self.path / f"maps-{split}-{index}.png"

    def pictures(self, kind: str) -> list[Path]:
        """The PNGs of one kind (``confusion``, ``filters``, ``maps``), sorted by name."""
        return sorted(self.path.glob(f"{kind}-*.png"))

    # -- writing

    MARKER = ".convlab-run"

    def is_run(self) -> bool:
        """Whether the folder is a convlab run: its marker, or the files of a run written before markers."""
        return any((self.path / n).exists() for n in (self.MARKER, "last.pt", "best.pt", "metrics.jsonl"))

    def holds_training(self) -> bool:
        """Whether a checkpoint is there: work that --resume continues and a new run must not replace."""
        return self.last.exists() or self.best.exists()

    @classmethod
    def create(cls, cfg, resume: bool, main: bool) -> "RunDir":
        """The run directory of a new run (or of the one ``--resume`` continues), locked by rank 0
        (:class:`RunLock`) and cleared of the temp files of writers that died (a ``kill -9`` mid-save).

        A new run goes into a folder that does not exist, an empty one, or a convlab run that never saved a
        checkpoint (it stopped before its first epoch ended: it restarts there). A folder holding anything
        else is refused — nothing a user has is overwritten."""
        if resume:
            if not cfg.out:
                raise UsageError("--resume needs --out RUN_DIR (the run to continue)")
            rd = cls(Path(cfg.out))
            if not rd.path.is_dir():
                raise UsageError(f"--resume: {rd.path} does not exist (give the run directory to continue)")
            if main:
                rd._lock()
            if not rd.last.is_file():
                rd.release()
                raise UsageError(f"--resume: {rd.path} holds no last.pt to continue from"
                                 + ("; it saved no checkpoint before it stopped: train again with the same --out "
                                    "to start it afresh" if rd.is_run() else ""))
            return rd
        if not cfg.out:
            return cls._numbered(cfg, main)
        rd = cls(Path(cfg.out))
        if rd.path.exists() and not rd.path.is_dir():
            raise UsageError(f"--out {rd.path} is a file, not a folder; give a folder for the run")
        if not main:
            return rd
        rd.path.mkdir(parents=True, exist_ok=True)
        rd._lock()
        try:
            rd._check_new()
            write_text(rd.path / cls.MARKER, json.dumps({"convlab_run": 1}) + "\n")
        except BaseException:
            rd.release()
            raise
        return rd

    @classmethod
    def _numbered(cls, cfg, main: bool) -> "RunDir":
        """runs/NNN-model-data, the next free number; created at once (exclusive), so that two runs started
        together take two numbers."""
        root = Path("runs")
        slug = re.sub(r"[^A-Za-z0-9]+", "-", cfg.model if len(cfg.model) <= 24 else "spec").strip("-") or "model"
        data = re.sub(r"[^A-Za-z0-9]+", "-", cfg.data.split(":")[0]).strip("-")
        nums = [int(m.group(1)) for p in root.glob("*") if (m := re.match(r"(\d+)-", p.name))] if root.is_dir() else []
        n = max(nums, default=0) + 1
        if not main:
            return cls(root / f"{n:03d}-{slug}-{data}")
        root.mkdir(parents=True, exist_ok=True)
        for n in range(n, n + 1000):
            rd = cls(root / f"{n:03d}-{slug}-{data}")
            try:
                rd.path.mkdir()
            except FileExistsError:
                continue
            rd._lock()
            write_text(rd.path / cls.MARKER, json.dumps({"convlab_run": 1}) + "\n")
            return rd
        raise UsageError(f"{root}: no free run number after {n}; give --out DIR")

    def _check_new(self) -> None:
        """A new run may go here: the folder is empty, or a convlab run that saved no checkpoint."""
        if self.holds_training():
            raise UsageError(f"{self.path} already holds a run; continue it with --resume, or choose another --out "
                             f"(nothing was overwritten)")
        ours = {self.MARKER, RunLock.NAME}
        others = sorted(p.name for p in self.path.iterdir() if p.name not in ours and not _TEMP.match(p.name))
        if others and not self.is_run():
            shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
            raise UsageError(f"--out {self.path} is a folder that is not empty and is not a convlab run (it holds "
                             f"{shown}); a run writes config.yaml, summary.*, model.spec, metrics.*, curves.png and "
                             f"*.pt there and would overwrite yours. Give a new or empty folder, e.g. "
                             f"--out {self.path / 'run1'} (nothing was written)")
        if self.is_run() and (self.path / "config.yaml").exists():
            print(f"note: {self.path} holds a run that saved no checkpoint (it stopped before its first epoch "
                  f"ended); starting it afresh there", file=sys.stderr)

    def _lock(self) -> None:
        self.lock = RunLock.acquire(self.path)
        for p in remove_stale_temps(self.path):
            print(f"note: removed {p.name}, a temp file left by a convlab process that is gone", file=sys.stderr)

    def release(self) -> None:
        """Give up the run directory's lock (if this process holds it)."""
        lock = getattr(self, "lock", None)
        if lock is not None:
            lock.release()
            self.lock = None

    def write_start(self, cfg, spec_text: str | None, summary) -> None:
        import yaml

        write_text(self.path / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        if spec_text:
            write_text(self.path / "model.spec", spec_text + "\n")
        write_text(self.path / "summary.txt", str(summary))
        write_text(self.path / "summary.json", summary.to_json())
        for name in ("metrics.jsonl", "metrics.csv", "steps.jsonl"):
            (self.path / name).unlink(missing_ok=True)

    def append_metrics(self, row: dict) -> None:
        rows = [r for r in self.read_metrics() if r["epoch"] < row["epoch"]] + [row]
        self._write(rows)

    def _write(self, rows: list[dict]) -> None:
        write_text(self.path / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
        buf = io.StringIO(newline="")
        w = csv.DictWriter(buf, fieldnames=METRIC_KEYS)
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k) for k in METRIC_KEYS})
        write_text(self.path / "metrics.csv", buf.getvalue())

    @property
    def steps(self) -> Path:
        return self.path / "steps.jsonl"

    def append_step(self, row: dict) -> None:
        with open(self.steps, "a") as f:
            f.write(json.dumps(row) + "\n")

    def keep_steps(self, step: int) -> None:
        """Drop the step rows after ``step`` (a resumed run trains those steps again)."""
        if self.steps.is_file():
            rows = [r for r in self.read_steps() if r["step"] <= step]
            write_text(self.steps, "".join(json.dumps(r) + "\n" for r in rows))

    def read_steps(self) -> list[dict]:
        """The rows of steps.jsonl (none when the run did not log steps)."""
        if not self.steps.is_file():
            return []
        out = []
        for line in self.steps.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line cut short when the run was killed: the rows before it stand
        return out

    def copy_best(self) -> None:
        with atomic_open(self.best) as f, open(self.last, "rb") as src:
            shutil.copyfileobj(src, f)

    def plot(self, rows: list[dict]) -> None:
        from ..viz import plot_curves

        plot_curves(rows, self.curves, title=self.path.name)

    # -- reading back, every file checked

    def _read(self, name: str) -> str | None:
        """The text of one of the run's files (None where it is missing); a RunError where it is not text."""
        p = self.path / name
        if not p.is_file():
            return None
        try:
            return p.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise RunError(f"{p}: expected a text file written by convlab, got bytes that are not UTF-8 text") from None

    def read_metrics(self) -> list[dict]:
        """The rows of metrics.jsonl, one per epoch (none before the first epoch ends), each checked: a JSON
        object with a whole epoch number and numbers (or null) under the METRIC_KEYS."""
        text = self._read("metrics.jsonl")
        if text is None:
            return []
        p = self.path / "metrics.jsonl"
        rows = []
        for i, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise RunError(f"{p}, line {i}: not JSON ({e.msg}): {line[:60]!r}; expected one JSON object per "
                               f"epoch, as convlab train writes") from None
            rows.append(_check_row(row, f"{p}, line {i}"))
        return rows

    def read_config(self) -> dict:
        """config.yaml as a plain mapping ({} where it is missing), its keys and values checked."""
        import yaml

        from .config import TrainConfig

        text = self._read("config.yaml")
        if text is None:
            return {}
        p = self.path / "config.yaml"
        try:
            d = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise RunError(f"{p}: not valid YAML ({str(e).splitlines()[0]})") from None
        TrainConfig.from_dict({} if d is None else d, source=str(p), error=RunError)
        return d or {}

    def _summary(self) -> dict:
        text = self._read("summary.json")
        if text is None:
            return {}
        p = self.path / "summary.json"
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise RunError(f"{p}: not JSON ({e.msg}); expected the summary convlab train writes") from None
        if not isinstance(d, dict):
            raise RunError(f"{p}: expected a JSON object (the model's summary), got {type(d).__name__}")
        if not isinstance(d.get("totals", {}), dict):
            raise RunError(f"{p}: key 'totals': expected a mapping of totals, got {type(d['totals']).__name__}")
        shape = d.get("output_shape")
        if shape is not None and not (isinstance(shape, list) and all(_num(v) or v is None for v in shape)):
            raise RunError(f"{p}: key 'output_shape': expected a list of sizes, got {shape!r:.60}")
        return d

    def read_totals(self) -> dict:
        """The totals of summary.json (parameters, MACs, ...; {} where it is missing)."""
        totals = self._summary().get("totals", {})
        for k in ("trainable_params", "macs"):
            if totals.get(k) is not None and not _num(totals[k]):
                raise RunError(f"{self.path / 'summary.json'}: key 'totals.{k}': expected a number, got "
                               f"{totals[k]!r:.60}")
        return totals

    def read_output_shape(self) -> list | None:
        """The model's output shape from summary.json ([N, K]; [N, 1] for a binary head), None where missing."""
        return self._summary().get("output_shape")

    def read_text(self, name: str) -> str:
        """One of the run's text files (summary.txt, model.spec), or "" where it is missing."""
        return self._read(name) or ""

    def read(self) -> dict:
        """The run in one mapping: config, metrics, summary totals and the figures ``convlab compare``
        shows (final and best test accuracy, time, speed). A UsageError where this is not a run."""
        p = self.path
        if not (p / "metrics.jsonl").is_file():
            raise UsageError(f"{p}: not a run directory (no metrics.jsonl); runs live under runs/ by default")
        metrics = self.read_metrics()
        config = self.read_config()
        totals = self.read_totals()

        evals = [m for m in metrics if m.get("test_acc") is not None]
        best = max(evals, key=lambda m: m["test_acc"], default=None)
        return {
            "run": str(p), "name": p.name, "model": config.get("model"), "data": config.get("data"),
            "epochs": len(metrics), "params": totals.get("trainable_params"), "macs": totals.get("macs"),
            "final_test_acc": evals[-1]["test_acc"] if evals else None,
            "best_test_acc": best["test_acc"] if best else None, "best_epoch": best["epoch"] if best else None,
            "final_train_loss": metrics[-1]["train_loss"] if metrics else None,
            "wall_s": metrics[-1]["wall_s"] if metrics else None,
            "images_per_s": (sum(m["images_per_s"] or 0 for m in metrics) / len(metrics)) if metrics else None,
            "metrics": metrics, "config": config,
        }


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_row(row, where: str) -> dict:
    """One metrics row as convlab writes it, else a RunError naming the file, the line, the key."""
    if not isinstance(row, dict):
        raise RunError(f"{where}: expected a JSON object with the keys {', '.join(METRIC_KEYS)}, got "
                       f"{type(row).__name__}")
    for k in ("epoch", "train_loss", "train_acc"):
        if k not in row:
            raise RunError(f"{where}: the key {k!r} is missing (a row holds {', '.join(METRIC_KEYS)})")
    if not (isinstance(row["epoch"], int) and not isinstance(row["epoch"], bool) and row["epoch"] >= 1):
        raise RunError(f"{where}: key 'epoch': expected a whole number >= 1, got {row['epoch']!r:.60}")
    for k in METRIC_KEYS[1:]:
        v = row.get(k)
        if v is not None and not _num(v):
            raise RunError(f"{where}: key {k!r}: expected a number or null, got {v!r:.60}")
    for k in ("train_acc", "test_acc"):
        v = row.get(k)
        if v is not None and math.isfinite(v) and not 0 <= v <= 1:
            raise RunError(f"{where}: key {k!r}: expected an accuracy in [0, 1], got {v!r}")
    return row

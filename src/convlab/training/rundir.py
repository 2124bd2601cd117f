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
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from pathlib import Path

from ..errors import UsageError
from ..fileio import atomic_open, write_text

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

    @classmethod
    def create(cls, cfg, resume: bool, main: bool) -> "RunDir":
        if resume:
            if not cfg.out:
                raise UsageError("--resume needs --out RUN_DIR (the run to continue)")
            path = Path(cfg.out)
            if not cls(path).last.is_file():
                raise UsageError(f"--resume: {path} holds no last.pt to continue from")
            return cls(path)
        if cfg.out:
            path = Path(cfg.out)
            if cls(path).last.exists() or (path / "metrics.jsonl").exists():
                raise UsageError(f"{path} already holds a run; continue it with --resume, or choose another --out "
                                 f"(nothing was overwritten)")
        else:
            root = Path("runs")
            slug = re.sub(r"[^A-Za-z0-9]+", "-", cfg.model if len(cfg.model) <= 24 else "spec").strip("-") or "model"
            data = re.sub(r"[^A-Za-z0-9]+", "-", cfg.data.split(":")[0]).strip("-")
            nums = [int(m.group(1)) for p in root.glob("*") if (m := re.match(r"(\d+)-", p.name))] if root.is_dir() else []
            path = root / f"{max(nums, default=0) + 1:03d}-{slug}-{data}"
        if main:
            path.mkdir(parents=True, exist_ok=True)
        return cls(path)

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

    # -- reading back

    def read_metrics(self) -> list[dict]:
        """The rows of metrics.jsonl, one per epoch (none before the first epoch ends)."""
        p = self.path / "metrics.jsonl"
        return [json.loads(line) for line in p.read_text().splitlines() if line.strip()] if p.exists() else []

    def read_config(self) -> dict:
        """config.yaml as a plain mapping ({} where it is missing)."""
        import yaml

        p = self.path / "config.yaml"
        return yaml.safe_load(p.read_text()) if p.is_file() else {}

    def read_totals(self) -> dict:
        """The totals of summary.json (parameters, MACs, ...; {} where it is missing)."""
        p = self.path / "summary.json"
        return json.loads(p.read_text()).get("totals", {}) if p.is_file() else {}

    def read_output_shape(self) -> list | None:
        """The model's output shape from summary.json ([N, K]; [N, 1] for a binary head), None where missing."""
        p = self.path / "summary.json"
        return json.loads(p.read_text()).get("output_shape") if p.is_file() else None

    def read_text(self, name: str) -> str:
        """One of the run's text files (summary.txt, model.spec), or "" where it is missing."""
        p = self.path / name
        return p.read_text() if p.is_file() else ""

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

"""The run directory: config.yaml, model.spec, summary, metrics.jsonl/csv, checkpoints, plots."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

from ..errors import UsageError

METRIC_KEYS = ["epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "images_per_s", "epoch_s", "wall_s"]


class RunDir:
    def __init__(self, path: Path):
        self.path = Path(path)

    @classmethod
    def create(cls, cfg, resume: bool, main: bool) -> "RunDir":
        if resume:
            if not cfg.out:
                raise UsageError("--resume needs --out RUN_DIR (the run to continue)")
            path = Path(cfg.out)
            if not (path / "last.pt").is_file():
                raise UsageError(f"--resume: {path} holds no last.pt to continue from")
            return cls(path)
        if cfg.out:
            path = Path(cfg.out)
            if (path / "last.pt").exists() or (path / "metrics.jsonl").exists():
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

        (self.path / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        if spec_text:
            (self.path / "model.spec").write_text(spec_text + "\n")
        (self.path / "summary.txt").write_text(str(summary))
        (self.path / "summary.json").write_text(summary.to_json())
        for name in ("metrics.jsonl", "metrics.csv"):
            (self.path / name).unlink(missing_ok=True)

    def read_metrics(self) -> list[dict]:
        p = self.path / "metrics.jsonl"
        return [json.loads(line) for line in p.read_text().splitlines() if line.strip()] if p.exists() else []

    def append_metrics(self, row: dict) -> None:
        rows = [r for r in self.read_metrics() if r["epoch"] < row["epoch"]] + [row]
        self._write(rows)

    def _write(self, rows: list[dict]) -> None:
        tmp = self.path / "metrics.jsonl.tmp"
        tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
        tmp.replace(self.path / "metrics.jsonl")
        with open(self.path / "metrics.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=METRIC_KEYS)
            w.writeheader()
            for r in rows:
                w.writerow({k: r.get(k) for k in METRIC_KEYS})

    def copy_best(self) -> None:
        tmp = self.path / ".best.pt.tmp"
        shutil.copyfile(self.path / "last.pt", tmp)
        tmp.replace(self.path / "best.pt")

    def plot(self, rows: list[dict]) -> None:
        from ..viz import plot_curves

        plot_curves(rows, self.path / "curves.png", title=self.path.name)

"""The degradation experiment's members against ``convlab train``: what logging every k steps costs.

For each member of the quick preset (plain-N and resnet-N, width 4, Fashion-MNIST at 14x14, batch
128), the same training steps run twice per round, in alternating order: as ``convlab train`` runs
them (no step log) and as the experiment runs them (``log_every`` = the preset's 10: loss, error and
every layer's gradient norm into steps.jsonl). Images/s is the run's own training throughput (the
epoch's images over its time, evaluation excluded); the table shows the median over the rounds and
the ratio experiment / train (1.00 = logging is free).

Run: .venv/bin/python bench/experiment_speed.py [--depths 20,56] [--steps 40] [--rounds 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--depths", default="20,56", help="depths (default 20,56)")
    ap.add_argument("--steps", type=int, default=40, help="training steps per measurement (default 40)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds, alternating the two (default 3)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    a = ap.parse_args()

    from convlab import experiment as E
    from convlab.training import train

    p = dataclasses.replace(E.PRESETS["quick"], max_steps=a.steps, epochs=1, test_subset=256)
    ds = E._dataset(p, None, None)
    depths = E.parse_depths(a.depths)
    print(f"{ds.name}, {len(ds.train_x)} training images at {p.resize}x{p.resize}, width {p.width}, batch "
          f"{p.batch_size}, {a.steps} steps x {a.rounds} rounds; log every {E.PRESETS['quick'].log_every} steps")
    print(f"{'member':<10} {'train img/s':>12} {'experiment img/s':>17} {'ratio':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in E.member_names(depths):
            speeds = {"train": [], "experiment": []}
            for r in range(a.rounds):
                order = ("train", "experiment") if r % 2 == 0 else ("experiment", "train")
                for kind in order:
                    cfg = E._config(p, name, 0, "cpu", Path(tmp) / f"{name}-{kind}-{r}", a.threads)
                    cfg.log_every = E.PRESETS["quick"].log_every if kind == "experiment" else None
                    run = train(config=cfg, data=ds, progress=False)
                    speeds[kind].append(run.metrics[-1]["images_per_s"])
            t, e = statistics.median(speeds["train"]), statistics.median(speeds["experiment"])
            print(f"{name:<10} {t:>12.0f} {e:>17.0f} {e / t:>6.2f}", flush=True)


if __name__ == "__main__":
    main()

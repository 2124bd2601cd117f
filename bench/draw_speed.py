"""How long `convlab draw` takes, against the summary of the same model in the same run.

Run: .venv/bin/python bench/draw_speed.py [--repeats 5] [--models resnet50,resnet152,examples.densenet:densenet121@1,resnet20]

For each model at its zoo input, at full depth: the summary alone (the baseline: one meta-device trace),
the graph (its own trace of every call, branch and shortcut), its DOT text, Graphviz's layout to SVG, and
the volumes view's SVG. NAME@N draws at --depth N (DenseNet-121's dense connections at full depth take
Graphviz minutes; at depth 1 each dense block is one box). Medians over the repeats, in this process after one warm-up; the ratio is the
whole graph picture (trace + DOT + layout) over the summary. The goal: ResNet-50 at full depth, layout
included, in 2 s or less on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path

GOAL_S = 2.0


def _median(fn, repeats: int) -> tuple[float, object]:
    out = fn()  # warm-up (imports, caches)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5, help="timed runs per step (default: 5)")
    ap.add_argument("--models", default="resnet50,resnet152,examples.densenet:densenet121@1,resnet20",
                    help="zoo names or package.module:attr, comma-separated NAME@N folds at depth N (default: resnet50,resnet152,examples.densenet:densenet121@1,resnet20)")
    ap.add_argument("--layout-limit", type=float, default=60.0,
                    help="seconds Graphviz gets per layout before the row says it ran over (default: 60)")
    a = ap.parse_args()

    import torch

    import convlab
    from convlab.drawing.dot import GraphvizError, render, to_dot
    from convlab.factory import resolve_model

    torch.set_num_threads(2)
    if not shutil.which("dot"):
        raise SystemExit("needs Graphviz's dot for the layout (apt-get install graphviz)")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of {a.repeats} runs, full depth")
    head = (f"{'model':<12} {'nodes':>6} {'summary':>8} {'graph':>8} {'dot':>7} {'layout':>8} {'picture':>8} "
            f"{'× summary':>9} {'volumes':>8}")
    print(head)
    print("-" * len(head))
    verdicts = []
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # examples/ (DenseNet-121's definition)
    for item in a.models.split(","):
        name, _, at = item.partition("@")
        depth = int(at) if at else None
        ref = resolve_model(name)
        shape = ref.input_shape or (3, 224, 224)
        t_sum, _ = _median(lambda: convlab.summary(name, shape), a.repeats)

        t_graph, g = _median(lambda: convlab.draw(name, shape, depth=depth).graph, a.repeats)
        t_dot, text = _median(lambda: to_dot(g, name), a.repeats)
        t_vol, _ = _median(lambda: convlab.draw(name, shape, view="volumes").to_svg(), a.repeats)
        short = name.rsplit(":", 1)[-1] + (f"@{depth}" if depth is not None else "")
        try:
            t_layout, _ = _median(lambda: render(text, "svg", timeout=a.layout_limit), a.repeats)
        except GraphvizError:
            print(f"{short:<12} {len(g.nodes):>6} {t_sum:>7.3f}s {t_graph:>7.3f}s {t_dot:>6.3f}s "
                  f"{'> ' + format(a.layout_limit, 'g') + 's':>8} {'-':>8} {'-':>9} {t_vol:>7.3f}s")
            continue
        picture = t_graph + t_dot + t_layout
        print(f"{short:<12} {len(g.nodes):>6} {t_sum:>7.3f}s {t_graph:>7.3f}s {t_dot:>6.3f}s {t_layout:>7.3f}s "
              f"{picture:>7.3f}s {picture / t_sum:>8.1f}× {t_vol:>7.3f}s")
        if name == "resnet50":
            verdicts.append(f"ResNet-50 at full depth, layout included: {picture:.2f} s "
                            f"({'meets' if picture <= GOAL_S else 'misses'} the {GOAL_S:.0f} s goal)")
    print("graph: convlab.draw's summary and trace; picture: graph + dot + layout (what 'convlab draw' does "
          "before writing the file)")
    for v in verdicts:
        print(v)


if __name__ == "__main__":
    main()

"""Summary speed: convlab (spec path and nn.Module path) against torchinfo and a plain CPU forward.

Run: .venv/bin/pip install torchinfo && .venv/bin/python bench/summary_speed.py
(pip install pytorchcv efficientnet_pytorch --no-deps adds third-party models to the corpus.)
All timings are medians of interleaved repeats in one process; ratios are against torchinfo.

The second table is the corpus (tests/model_corpus.py, plus the installed third-party collections):
per model, convlab's nn.Module path, torchinfo and a forward at batch 1, and the median and minimum
ratio torchinfo/convlab over the corpus, with the goals beside them.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

import convlab
from convlab.analyze import summary

GOAL_MEDIAN, GOAL_MIN, GOAL_SPEC_MS = 20.0, 5.0, 2.0  # the goals: torchinfo/convlab at batch 1; ResNet-110 spec


def timed(fns: dict, repeats: int) -> dict:
    """Median milliseconds of each function, the functions interleaved (one warm-up call each)."""
    times = {k: [] for k in fns}
    with torch.no_grad():
        for fn in fns.values():
            fn()
        for _ in range(repeats):
            for k, fn in fns.items():
                t = time.perf_counter()
                fn()
                times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) * 1e3 for k, v in times.items()}


def corpus(repeats: int, torchinfo, only=None) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from model_corpus import CORPUS, third_party

    models = CORPUS + third_party()
    if only:
        models = [m for m in models if any(o in m[0] for o in only)]
    print(f"\ncorpus: {len(models)} models at batch 1 (tests/model_corpus.py + installed third-party code)\n")
    header = f"{'model':<40} {'input':<10} {'convlab':>9} {'torchinfo':>10} {'forward':>9} {'torchinfo/convlab':>18}"
    print(header)
    print("-" * len(header))
    ratios = []
    for name, make, shape in models:
        torch.manual_seed(0)
        model = make().eval()
        x = torch.randn(*shape)
        fns = {"convlab": lambda: summary(model, shape[1:]), "forward": lambda: model(x)}
        if torchinfo is not None:
            fns["torchinfo"] = lambda: torchinfo.summary(model, shape, verbose=0)
        med = timed(fns, repeats)
        ti = med.get("torchinfo")
        ratio = f"{ti / med['convlab']:.1f}x" if ti else "n/a"
        if ti:
            ratios.append((ti / med["convlab"], name))
        print(f"{name:<40} {'x'.join(map(str, shape[1:])):<10} {med['convlab']:>7.2f}ms "
              f"{(f'{ti:8.2f}ms' if ti else 'n/a'):>10} {med['forward']:>7.2f}ms "
              f"{ratio:>18}")
    if ratios:
        med_r = statistics.median(r for r, _ in ratios)
        low, low_name = min(ratios)
        print(f"\ntorchinfo/convlab over {len(ratios)} models: median {med_r:.1f}x (goal >= {GOAL_MEDIAN:.0f}x), "
              f"minimum {low:.1f}x on {low_name} (goal >= {GOAL_MIN:.0f}x)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--only", nargs="*", help="corpus models whose name contains one of these words")
    ap.add_argument("--no-corpus", action="store_true", help="the three classic cases only")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    try:
        import torchinfo
    except ImportError:
        torchinfo = None
        print("torchinfo is not installed (pip install torchinfo): its column is left out")

    cases = [("resnet18", (3, 224, 224), 1), ("resnet18", (3, 224, 224), 32), ("resnet110", (3, 32, 32), 1)]
    print(f"torch {torch.__version__}, {args.threads} thread(s), median of {args.repeats} interleaved runs\n")
    header = f"{'model':<10} {'input':<12} {'batch':>5} {'spec path':>10} {'module':>10} {'torchinfo':>10} " \
             f"{'forward':>10} {'torchinfo/module':>17} {'torchinfo/spec':>15}"
    print(header)
    print("-" * len(header))
    for name, shape, batch in cases:
        model = convlab.create_model(name, input_shape=shape).eval()
        x = torch.randn(batch, *shape)
        fns = {
            "spec": lambda: summary(name, shape, batch_size=batch),
            "module": lambda: summary(model, shape, batch_size=batch),
            "forward": lambda: model(x),
        }
        if torchinfo is not None:
            fns["torchinfo"] = lambda: torchinfo.summary(model, (batch, *shape), verbose=0)
        med = timed(fns, args.repeats)
        ti = med.get("torchinfo")
        ti_text = f"{ti:8.1f}ms" if ti else "n/a"
        r_mod = f"{ti / med['module']:.1f}x" if ti else "n/a"
        r_spec = f"{ti / med['spec']:.1f}x" if ti else "n/a"
        print(f"{name:<10} {'x'.join(map(str, shape)):<12} {batch:>5} {med['spec']:>8.1f}ms {med['module']:>8.1f}ms "
              f"{ti_text:>10} {med['forward']:>8.1f}ms {r_mod:>17} {r_spec:>15}")
        if name == "resnet110":
            print(f"{'':<10} ResNet-110 spec path {med['spec']:.2f} ms (goal <= {GOAL_SPEC_MS:.0f} ms)")
    if not args.no_corpus:
        corpus(args.repeats, torchinfo, args.only)


if __name__ == "__main__":
    main()

"""Summary speed: convlab (spec path and nn.Module path) against torchinfo and a plain CPU forward.

Run: .venv/bin/pip install torchinfo && .venv/bin/python bench/summary_speed.py
All timings are medians of interleaved repeats in one process; ratios are against torchinfo.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import convlab
from convlab.analyze import summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
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
        times = {k: [] for k in fns}
        with torch.no_grad():
            for fn in fns.values():
                fn()
            for _ in range(args.repeats):
                for k, fn in fns.items():
                    t = time.perf_counter()
                    fn()
                    times[k].append(time.perf_counter() - t)
        med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
        ti = med.get("torchinfo")
        ti_text = f"{ti:8.1f}ms" if ti else "n/a"
        r_mod = f"{ti / med['module']:.1f}x" if ti else "n/a"
        r_spec = f"{ti / med['spec']:.1f}x" if ti else "n/a"
        print(f"{name:<10} {'x'.join(map(str, shape)):<12} {batch:>5} {med['spec']:>8.1f}ms {med['module']:>8.1f}ms "
              f"{ti_text:>10} {med['forward']:>8.1f}ms {r_mod:>17} {r_spec:>15}")


if __name__ == "__main__":
    main()

"""2×2 max pooling, forward + backward: convlab's pairwise-maximum path against F.max_pool2d.

Run: .venv/bin/python bench/pool_speed.py [--repeats 15]
Channels-last CPU tensors over a sweep of channel counts; medians of interleaved repeats; the ratio is
torch / convlab (above 1: convlab's path is faster). convlab.nn.pool takes its path only for
few channels on large maps (``fast_path``), where this table shows it winning; the other rows show why
it stops there.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from convlab.nn.pool import _MaxPool2x2, fast_path

CASES = [  # (N, C, H, what)
    (256, 1, 28, ""),
    (256, 3, 28, ""),
    (256, 4, 28, ""),
    (256, 6, 28, "LeNet pool1 (batch 256)"),
    (256, 6, 10, ""),
    (256, 8, 28, ""),
    (256, 16, 10, "LeNet pool2 (batch 256)"),
    (64, 32, 32, ""),
    (64, 64, 16, ""),
]


def fwd_bwd(fn, x, g):
    return torch.autograd.grad(fn(x), x, g)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), median of {args.repeats}; "
          f"'(used)': convlab.nn.MaxPool2d takes its path for this input")
    print(f"{'input (channels-last)':<22} {'torch':>9} {'convlab':>9} {'ratio':>7}  {'':<}")
    for n, c, h, what in CASES:
        x = torch.randn(n, c, h, h).contiguous(memory_format=torch.channels_last).requires_grad_()
        g = torch.randn(n, c, h // 2, h // 2).contiguous(memory_format=torch.channels_last)
        assert torch.equal(fwd_bwd(lambda t: F.max_pool2d(t, 2), x, g)[0], fwd_bwd(_MaxPool2x2.apply, x, g)[0])
        times = {"torch": [], "convlab": []}
        for _ in range(args.repeats):
            for name, fn in (("torch", lambda t: F.max_pool2d(t, 2)), ("convlab", _MaxPool2x2.apply)):
                t = time.perf_counter()
                fwd_bwd(fn, x, g)
                times[name].append(time.perf_counter() - t)
        a, b = statistics.median(times["torch"]) * 1e3, statistics.median(times["convlab"]) * 1e3
        used = "  (used)" if fast_path(x) else ""
        print(f"{f'{n}x{c}x{h}x{h}':<22} {a:>7.2f}ms {b:>7.2f}ms {a / b:>6.2f}x  {what}{used}")


if __name__ == "__main__":
    main()

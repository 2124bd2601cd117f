"""The teaching convolution (convlab.scratch.conv2d: im2col + matmul) against torch's F.conv2d.

Run: .venv/bin/python bench/scratch_speed.py
Shapes are CNN-typical (batch, channels in→out, size, kernel, stride, groups); timings are medians
of interleaved repeats; the ratio is scratch / torch (lower is better; the goal is within 10x).
"""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F

from convlab import scratch

CASES = [  # (N, C_in, C_out, H, k, stride, padding, groups, what)
    (32, 1, 6, 28, 5, 1, 2, 1, "LeNet conv1"),
    (32, 16, 16, 32, 3, 1, 1, 1, "ResNet-20 stage 1"),
    (32, 32, 64, 16, 3, 2, 1, 1, "ResNet-20 downsampling"),
    (8, 64, 128, 56, 3, 1, 1, 1, "ResNet-18 stage 1 width"),
    (8, 128, 128, 28, 3, 1, 1, 128, "MobileNet depthwise"),
    (8, 128, 256, 28, 1, 1, 0, 1, "MobileNet pointwise"),
]


def main(repeats: int = 7) -> None:
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), median of {repeats}")
    print(f"{'layer':<26} {'shape':<30} {'scratch':>10} {'torch':>10} {'ratio':>7}")
    for n, ci, co, h, k, s, p, g, what in CASES:
        x = torch.randn(n, ci, h, h)
        w = torch.randn(co, ci // g, k, k)
        b = torch.randn(co)
        assert torch.allclose(scratch.conv2d(x, w, b, s, p, 1, g), F.conv2d(x, w, b, s, p, 1, g), atol=1e-3)
        times = {"scratch": [], "torch": []}
        for _ in range(repeats):
            for name, fn in (("scratch", lambda: scratch.conv2d(x, w, b, s, p, 1, g)),
                             ("torch", lambda: F.conv2d(x, w, b, s, p, 1, g))):
                t = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t)
        a, c = statistics.median(times["scratch"]) * 1e3, statistics.median(times["torch"]) * 1e3
        shape = f"{n}x{ci}x{h}x{h} k{k} s{s} ->{co}" + (f" g{g}" if g > 1 else "")
        print(f"{what:<26} {shape:<30} {a:>8.2f}ms {c:>8.2f}ms {a / c:>6.1f}x")


if __name__ == "__main__":
    main()

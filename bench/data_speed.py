"""Batches per second: convlab's on-device batcher against the textbook DataLoader pipeline.

Both produce the same thing from the same uint8 Fashion-MNIST tensors (random data of the same
shape when it is not installed): normalised float batches with a random 4-pixel-padded crop and a
random horizontal flip. The textbook pipeline applies the transforms per sample in a Dataset's
``__getitem__`` (as torchvision.transforms would) behind a ``torch.utils.data.DataLoader``.

A second table times convlab's flip-only batches (Fashion-MNIST's default augmentation) both ways:
from a mirrored copy of the dataset in one ``index_select`` (what the batcher does for datasets up to
``MIRROR_MAX_BYTES``), and through the general crop-and-flip gather it uses otherwise. Both give the
same batches (tests/test_data.py).

Run: .venv/bin/python bench/data_speed.py [--batches 200] [--workers 0]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from convlab.data import Augment, Batcher, batcher
from _common import fashion_mnist_or_random


class PerSample(TorchDataset):
    """pad → random crop → random flip → to float → normalise, one image at a time."""

    def __init__(self, x, y, mean, std, pad=4):
        self.x, self.y, self.mean, self.std, self.pad = x, y, mean, std, pad

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        img = F.pad(self.x[i], (self.pad,) * 4)
        h, w = self.x.shape[2:]
        dy, dx = torch.randint(0, 2 * self.pad + 1, (2,)).tolist()
        img = img[:, dy:dy + h, dx:dx + w]
        if torch.rand(()) < 0.5:
            img = img.flip(-1)
        img = img.float() / 255
        return (img - self.mean[0]) / self.std[0], self.y[i]


def rate(iterable, batches: int) -> float:
    it = iter(iterable)
    next(it)  # warm-up (worker start-up excluded)
    t = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--batches", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--workers", type=int, default=0, help="DataLoader workers for the textbook pipeline")
    args = ap.parse_args()
    x, y, mean, std, what = fashion_mnist_or_random()
    fast = Batcher(x, y, mean, std, batch_size=args.batch_size, train=True, augment=Augment(crop=4, flip=True))
    slow = DataLoader(PerSample(x, y, mean, std), batch_size=args.batch_size, shuffle=True, drop_last=True,
                      num_workers=args.workers)
    r_fast = rate(fast, min(args.batches, len(fast) - 1))
    r_slow = rate(slow, min(args.batches, len(slow) - 1))
    print(f"data: {what}; batch {args.batch_size}; augmentation crop=4 + flip; torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s)")
    print(f"convlab Batcher (on device, batched ops):     {r_fast:10.1f} batches/s  "
          f"({r_fast * args.batch_size:,.0f} images/s)")
    print(f"DataLoader + per-sample transforms ({args.workers} workers): {r_slow:10.1f} batches/s  "
          f"({r_slow * args.batch_size:,.0f} images/s)")
    print(f"ratio: {r_fast / r_slow:.1f}x")

    mirrored = Batcher(x, y, mean, std, batch_size=args.batch_size, train=True, augment=Augment(flip=True))
    limit, batcher.MIRROR_MAX_BYTES = batcher.MIRROR_MAX_BYTES, 0
    gathered = Batcher(x, y, mean, std, batch_size=args.batch_size, train=True, augment=Augment(flip=True))
    batcher.MIRROR_MAX_BYTES = limit
    assert mirrored.x_and_mirror is not None and gathered.x_and_mirror is None
    n = min(args.batches, len(mirrored) - 1)
    r_m, r_g = [], []
    for _ in range(3):  # interleaved, best of 3
        r_m.append(rate(mirrored, n))
        r_g.append(rate(gathered, n))
    print(f"flip only: mirrored copy + index_select {max(r_m):10.1f} batches/s; "
          f"crop-and-flip gather {max(r_g):10.1f} batches/s; ratio {max(r_m) / max(r_g):.2f}x")


if __name__ == "__main__":
    main()

"""Training throughput: convlab's step against the textbook pipeline, same model, batch and machine.

convlab: the dataset resident on the device, batches gathered and augmented (flip) by the batcher,
channels_last, SGD with Nesterov momentum. Textbook: a ``DataLoader`` over the same uint8 tensors
with per-sample normalisation and flips in ``__getitem__``, NCHW, default settings, plain SGD with
momentum. Both run the forward, backward and optimizer step of the same zoo model.

Run: .venv/bin/python bench/train_speed.py [--steps 40]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

import convlab
from convlab.data import Augment, Batcher
from _common import fashion_mnist_or_random


class Textbook(TorchDataset):
    def __init__(self, x, y, mean, std):
        self.x, self.y, self.mean, self.std = x, y, mean[0], std[0]

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        img = self.x[i].float() / 255
        if torch.rand(()) < 0.5:
            img = img.flip(-1)
        return (img - self.mean) / self.std, self.y[i]


def images_per_s(model, batches, steps: int, channels_last: bool, nesterov: bool) -> float:
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=nesterov)
    model.train()
    it = iter(batches)

    def step():
        nonlocal it
        try:
            x, y = next(it)
        except StopIteration:
            it = iter(batches)
            x, y = next(it)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return len(y)

    for _ in range(3):
        step()
    t = time.perf_counter()
    n = sum(step() for _ in range(steps))
    return n / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--batch-size", type=int, default=256)
    args = ap.parse_args()
    x, y, mean, std, what = fashion_mnist_or_random()
    print(f"data: {what}; batch {args.batch_size}; torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    print(f"{'model':<28} {'convlab img/s':>14} {'textbook img/s':>15} {'ratio':>7}")
    fast_rates = {}
    for name, steps in (("lenet-modern", args.steps), ("lenet-modern:order=relu-pool", args.steps),
                        ("resnet20", max(5, args.steps // 4))):
        torch.manual_seed(0)
        fast = Batcher(x, y, mean, std, batch_size=args.batch_size, train=True, augment=Augment(flip=True),
                       channels_last=True)
        slow = DataLoader(Textbook(x, y, mean, std), batch_size=args.batch_size, shuffle=True, drop_last=True)
        r_fast = images_per_s(convlab.create_model(name, input_shape=(1, 28, 28), num_classes=10), fast, steps,
                              True, True)
        r_slow = images_per_s(convlab.create_model(name, input_shape=(1, 28, 28), num_classes=10), slow, steps,
                              False, False)
        fast_rates[name] = r_fast
        print(f"{name:<28} {r_fast:>14,.0f} {r_slow:>15,.0f} {r_fast / r_slow:>6.1f}x")
    ratio = fast_rates["lenet-modern"] / fast_rates["lenet-modern:order=relu-pool"]
    print(f"lenet-modern, max-pool before ReLU (the default) vs d2l's ReLU before max-pool: {ratio:.2f}x")


if __name__ == "__main__":
    main()

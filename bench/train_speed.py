"""Training throughput: convlab's step against the textbook pipeline, same network, batch and machine.

convlab: the model as ``convlab.create_model`` builds it, the dataset resident on the device, batches
gathered and augmented (flip) by the batcher, channels_last, fused SGD with Nesterov momentum, and the
process's allocator tuned as ``convlab train`` tunes it (``tune_cpu_allocator``).
Textbook: d2l's code — the network written with stock ``torch.nn`` layers (for LeNet, d2l's
conv→ReLU→max-pool order; the same function as convlab's pool-then-ReLU), a ``DataLoader`` over the
same uint8 tensors with per-sample normalisation and flips in ``__getitem__``, NCHW, plain SGD with
momentum, default settings. Both run forward, backward and the optimizer step on the same batches.

Each measurement runs in a fresh process (the allocator setting is per process), in rounds that
alternate the variants; the table shows the median images/s over the rounds. Two more convlab
variants show what single choices contribute: without the allocator tuning, and (LeNet) with d2l's
ReLU-before-pool order instead of convlab's pool-before-ReLU. The last column times the textbook's
model alone on batches made beforehand: no data pipeline can make a step faster than its model, so
textbook / textbook-model-only bounds what a faster pipeline alone could give.

Run: .venv/bin/python bench/train_speed.py [--rounds 5] [--steps 80]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

VARIANTS = ("convlab", "convlab-default-malloc", "convlab-relu-pool", "textbook", "textbook-model-only")


def textbook_lenet():
    """d2l 7.6's LeNet with ReLU and max-pooling, written the textbook way."""
    import torch.nn as nn

    return nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5, padding=2), nn.ReLU(), nn.MaxPool2d(kernel_size=2, stride=2),
        nn.Conv2d(6, 16, kernel_size=5), nn.ReLU(), nn.MaxPool2d(kernel_size=2, stride=2),
        nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))


def worker(model_name: str, variant: str, steps: int, batch_size: int) -> None:
    """Measure one variant in this process and print its images/s."""
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader
    from torch.utils.data import Dataset as TorchDataset

    import convlab
    from convlab.data import Augment, Batcher
    from convlab.training.device import tune_cpu_allocator
    from _common import fashion_mnist_or_random

    if variant in ("convlab", "convlab-relu-pool"):
        tune_cpu_allocator()
    if variant == "convlab-relu-pool":
        model_name += ":order=relu-pool"
    x, y, mean, std, what = fashion_mnist_or_random()
    torch.manual_seed(0)

    class Textbook(TorchDataset):
        def __len__(self):
            return len(x)

        def __getitem__(self, i):
            img = x[i].float() / 255
            if torch.rand(()) < 0.5:
                img = img.flip(-1)
            return (img - mean[0]) / std[0], y[i]

    fast = not variant.startswith("textbook")
    if fast:
        model = convlab.create_model(model_name, input_shape=(1, 28, 28), num_classes=10)
        model = model.to(memory_format=torch.channels_last)
        batches = Batcher(x, y, mean, std, batch_size=batch_size, train=True, augment=Augment(flip=True),
                          channels_last=True)
    else:
        model = (textbook_lenet() if model_name == "lenet-modern"
                 else convlab.create_model(model_name, input_shape=(1, 28, 28), num_classes=10))
        batches = DataLoader(Textbook(), batch_size=batch_size, shuffle=True, drop_last=True)
        if variant == "textbook-model-only":  # the batches made beforehand: what the textbook model alone costs
            batches = [b for b, _ in zip(batches, range(8))]
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=fast, fused=fast or None)
    model.train()
    it = iter(batches)

    def step():
        nonlocal it
        try:
            xb, yb = next(it)
        except StopIteration:
            it = iter(batches)
            xb, yb = next(it)
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return len(yb)

    for _ in range(3):
        step()
    t = time.perf_counter()
    n = sum(step() for _ in range(steps))
    print(f"{n / (time.perf_counter() - t):.1f} {what}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=80)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--worker", nargs=2, metavar=("MODEL", "VARIANT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(*args.worker, args.steps, args.batch_size)
        return

    import torch

    models = {"lenet-modern": args.steps, "resnet20": max(5, args.steps // 4)}
    variants = {m: [v for v in VARIANTS if m == "lenet-modern" or v != "convlab-relu-pool"] for m in models}
    rates = {(m, v): [] for m in models for v in variants[m]}
    what = ""
    for r in range(args.rounds):
        for m, steps in models.items():
            for v in variants[m]:
                out = subprocess.run([sys.executable, __file__, "--worker", m, v, "--steps", str(steps),
                                      "--batch-size", str(args.batch_size)], capture_output=True, text=True,
                                     check=True).stdout.split(maxsplit=1)
                rates[m, v].append(float(out[0]))
                what = out[1].strip()
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    print(f"data: {what}; batch {args.batch_size}; torch {torch.__version__}, {torch.get_num_threads()} thread(s); "
          f"median images/s of {args.rounds} rounds")
    print(f"{'model':<14} {'convlab':>9} {'textbook':>9} {'ratio':>7}   {'textbook model only':>20}   "
          f"convlab with one choice undone")
    for m in models:
        med = {v: statistics.median(rates[m, v]) for v in variants[m]}
        c, t = med["convlab"], med["textbook"]
        undone = f"default malloc {med['convlab-default-malloc']:,.0f} ({c / med['convlab-default-malloc']:.2f}x)"
        if "convlab-relu-pool" in med:
            undone += f", ReLU before pool {med['convlab-relu-pool']:,.0f} ({c / med['convlab-relu-pool']:.2f}x)"
        tm = med["textbook-model-only"]
        print(f"{m:<14} {c:>9,.0f} {t:>9,.0f} {c / t:>6.2f}x   {tm:>11,.0f} ({tm / t:.2f}x)   {undone}")


if __name__ == "__main__":
    main()

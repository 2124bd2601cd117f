"""Shared by the benchmarks: the data they run on."""

from __future__ import annotations

import torch

from convlab.errors import DataError


def fashion_mnist_or_random():
    """(x uint8 N×1×28×28, y, mean, std, description): Fashion-MNIST when installed, else random data
    of the same shape (the timings do not depend on the pixel values)."""
    try:
        from convlab.data import load

        ds = load("fashion-mnist", download=False)
        return ds.train_x, ds.train_y, ds.mean, ds.std, "Fashion-MNIST"
    except DataError:
        x = torch.randint(0, 256, (60000, 1, 28, 28), dtype=torch.uint8)
        y = torch.randint(0, 10, (60000,))
        return x, y, (0.286,), (0.353,), "random 60000x1x28x28 (Fashion-MNIST not installed)"

"""Miniature datasets written in the real file formats, for the tests."""

import pickle
from pathlib import Path

import numpy as np

from convlab.data import registry
from convlab.data.formats import write_idx


def make_idx_dataset(folder: Path, n_train=50, n_test=20, classes=10, compress=True, seed=0, learnable=False):
    """Four IDX files as Fashion-MNIST names them. With ``learnable``, the label is 1 for bright images
    and 0 for dark ones, so a model can learn it."""
    rng = np.random.default_rng(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    parts = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        if learnable:
            y = rng.integers(0, 2, n).astype(np.uint8)
            x = (rng.integers(0, 128, (n, 28, 28)) + 100 * y[:, None, None]).astype(np.uint8)
        else:
            x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
            y = rng.integers(0, classes, n, dtype=np.uint8)
        for kind, arr in (("images-idx3", x), ("labels-idx1", y)):
            p = folder / f"{split}-{kind}-ubyte"
            write_idx(p, arr, compress)
            if compress:
                p.rename(p.with_name(p.name + ".gz"))
        parts[split] = (x, y)
    return parts


def make_cifar10(folder: Path, per_batch=6, seed=0):
    rng = np.random.default_rng(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    batches = {}
    for name in ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"]:
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, per_batch)]
        with open(folder / name, "wb") as f:
            pickle.dump({b"batch_label": name.encode(), b"labels": labels, b"data": data,
                         b"filenames": [b"x.png"] * per_batch}, f, protocol=2)
        batches[name] = (data, labels)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [c.encode() for c in registry.CIFAR10_CLASSES], b"num_vis": 3072}, f, protocol=2)
    return batches

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


def mini_run_folder(tmp_path: Path, monkeypatch, n_train=64, n_test=32) -> Path:
    """A test's working folder: the current folder, a private cache, a learnable Fashion-MNIST in ``fm``."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    make_idx_dataset(tmp_path / "fm", n_train=n_train, n_test=n_test, learnable=True)
    return tmp_path


TINY_SPEC = "conv(4,3,p=1) bn relu maxpool(2) conv(8,3,p=1) relu gap flatten fc(10)"


def tiny_config(tmp_path: Path, **kw):
    """A TrainConfig for TINY_SPEC on the ``fm`` folder of :func:`mini_run_folder`: one epoch, one thread."""
    from convlab.training import TrainConfig

    base = dict(model=TINY_SPEC, data="fashion-mnist", data_dir=str(tmp_path / "fm"), epochs=1, batch_size=16,
                lr=0.05, device="cpu", augment="none", threads=1)
    base.update(kw)
    return TrainConfig(**base)


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

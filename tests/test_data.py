"""Datasets: miniature files in the real formats, safety, discovery, and the on-device batcher."""

import gzip
import io
import os
import pickle  # noqa: F401 - the evil pickle below
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch

from convlab.cli import main
from convlab.data import Augment, Batcher, load, registry
from convlab.data.batcher import cutout, random_crop_flip
from convlab.data.formats import load_cifar_pickle, read_idx, write_idx
from convlab.errors import ConvlabError, DataError
from minidata import make_cifar10, make_idx_dataset

FMNIST = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("CONVLAB_DATA", raising=False)
    monkeypatch.chdir(tmp_path)


def no_network(monkeypatch):
    def refuse(*a, **k):
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(registry.urllib.request, "urlopen", refuse)


# ---------------------------------------------------------------- formats


@pytest.mark.parametrize("compress", [True, False])
def test_idx_miniature_roundtrip(tmp_path, compress):
    parts = make_idx_dataset(tmp_path / "fm", compress=compress)
    ds = load("fashion-mnist", data_dir=tmp_path / "fm", download=False)
    assert ds.train_x.shape == (50, 1, 28, 28) and ds.train_x.dtype == torch.uint8
    assert torch.equal(ds.train_x[:, 0], torch.from_numpy(parts["train"][0]))
    assert torch.equal(ds.test_y, torch.from_numpy(parts["t10k"][1].astype(np.int64)))
    assert ds.classes[0] == "T-shirt/top" and ds.num_classes == 10
    x = parts["train"][0].astype(np.float64) / 255
    assert ds.mean[0] == pytest.approx(x.mean()) and ds.std[0] == pytest.approx(x.std())


def test_idx_errors_name_file_and_problem(tmp_path):
    p = tmp_path / "a"
    write_idx(p, np.zeros((4, 2, 2), np.uint8))
    data = p.read_bytes()
    p.write_bytes(data[:-3])
    with pytest.raises(DataError, match=r"a: header promises 4x2x2 = 16 bytes of data but the file holds 13"):
        read_idx(p)
    p.write_bytes(b"\x00\x00\x08\x03" + data[4:])
    write_idx(p, np.zeros((4, 2, 2), np.uint8))
    with pytest.raises(DataError, match="magic number 2051, expected a label file"):
        read_idx(p, 2049)
    p.write_bytes(b"\x01\x02" + data[2:])
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(p)
    gz = tmp_path / "b.gz"
    gz.write_bytes(gzip.compress(data)[:-10])
    with pytest.raises(DataError, match="corrupt or truncated gzip"):
        read_idx(gz)


def test_label_count_mismatch_and_range(tmp_path):
    make_idx_dataset(tmp_path / "fm", compress=False)
    write_idx(tmp_path / "fm" / "train-labels-idx1-ubyte", np.zeros(49, np.uint8))
    with pytest.raises(DataError, match="49 labels for 50 images"):
        load("fashion-mnist", data_dir=tmp_path / "fm", download=False)
    write_idx(tmp_path / "fm" / "train-labels-idx1-ubyte", np.full(50, 12, np.uint8))
    with pytest.raises(DataError, match="label 12 is outside 0..9"):
        load("fashion-mnist", data_dir=tmp_path / "fm", download=False)


def test_cifar_miniature(tmp_path):
    root = tmp_path / "data" / "cifar-10-batches-py"  # torchvision's layout under ./data
    batches = make_cifar10(root)
    ds = load("cifar10", download=False)
    assert ds.root == Path("data/cifar-10-batches-py")
    assert ds.train_x.shape == (30, 3, 32, 32) and ds.test_x.shape == (6, 3, 32, 32)
    data, labels = batches["data_batch_1"]
    # rows are channel-major: the first 1024 bytes are the red plane
    assert torch.equal(ds.train_x[0, 0].flatten(), torch.from_numpy(data[0, :1024]))
    assert torch.equal(ds.train_x[0, 2].flatten(), torch.from_numpy(data[0, 2048:]))
    assert ds.train_y[:6].tolist() == labels
    assert ds.classes == registry.CIFAR10_CLASSES and len(ds.mean) == 3
    # what a model trained on it sees: the images' own size, or --resize's square
    assert ds.input_shape() == ds.input_shape(None) == (3, 32, 32) and ds.input_shape(96) == (3, 96, 96)


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_restricted_unpickler_runs_nothing(tmp_path):
    p = tmp_path / "data_batch_1"
    p.write_bytes(pickle.dumps({"data": _Evil(), "labels": [1]}, protocol=2))
    with pytest.raises(DataError, match="refused to load global (posix|os|nt).system"):
        load_cifar_pickle(p)
    assert not (tmp_path / "PWNED").exists() and not Path("PWNED").exists()
    p.write_bytes(pickle.dumps({"data": np.zeros((1, 3072), np.uint8)}, protocol=2)[:-5])
    with pytest.raises(DataError, match="truncated or corrupt"):
        load_cifar_pickle(p)


# ---------------------------------------------------------------- discovery and fetching


def test_discovery_order(tmp_path, monkeypatch):
    make_idx_dataset(tmp_path / "explicit", seed=1)
    make_idx_dataset(tmp_path / "env" / "FashionMNIST" / "raw", seed=2)  # torchvision layout
    make_idx_dataset(tmp_path / "cache" / "convlab" / "fashion-mnist", seed=3)
    monkeypatch.setenv("CONVLAB_DATA", str(tmp_path / "env"))
    assert registry.find("fashion-mnist", tmp_path / "explicit") == tmp_path / "explicit"
    assert registry.find("fashion-mnist") == tmp_path / "env" / "FashionMNIST" / "raw"
    monkeypatch.delenv("CONVLAB_DATA")
    assert registry.find("fashion-mnist") == tmp_path / "cache" / "convlab" / "fashion-mnist"


def test_not_found_lists_every_place(tmp_path, monkeypatch):
    no_network(monkeypatch)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError) as info:
        load("mnist", progress=False)
    msg = str(info.value)
    assert "(user cache)" in msg and "torchvision layout" in msg
    assert "network is unreachable" in msg and "convlab data fetch mnist" in msg


def test_an_explicit_data_dir_is_the_only_place_looked(tmp_path, monkeypatch):
    no_network(monkeypatch)
    with pytest.raises(DataError) as info:
        load("mnist", data_dir=tmp_path / "nowhere", progress=False)
    msg = str(info.value)
    assert "nowhere (--data-dir)" in msg and "(user cache)" not in msg and "leave --data-dir out" in msg
    assert "network is unreachable" in msg
    assert not any((tmp_path / "nowhere").glob("*"))


def test_bad_download_leaves_nothing_behind(tmp_path, monkeypatch):
    class Resp(io.BytesIO):
        headers = {"Content-Length": "5"}

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

    monkeypatch.setattr(registry.urllib.request, "urlopen", lambda url, timeout: Resp(b"wrong"))
    with pytest.raises(DataError, match="checksum mismatch"):
        registry.fetch("mnist", tmp_path / "dl", progress=False)
    assert list((tmp_path / "dl").iterdir()) == []  # no partial file that could look complete


def test_unknown_dataset_close_match():
    with pytest.raises(DataError, match="did you mean 'fashion-mnist'"):
        registry.source("fashion-mnst")


def test_image_folder(tmp_path):
    pil = pytest.importorskip("PIL.Image")
    for c in ("cat", "dog"):
        (tmp_path / "imgs" / c).mkdir(parents=True)
        for i in range(5):
            pil.fromarray(np.full((8, 6, 3), 40 * i, np.uint8)).save(tmp_path / "imgs" / c / f"{i}.png")
    ds = load(f"folder:{tmp_path / 'imgs'}")
    assert ds.classes == ["cat", "dog"] and ds.train_x.shape[1:] == (3, 8, 6)
    assert len(ds.train_x) + len(ds.test_x) == 10


# ---------------------------------------------------------------- batcher


def _batcher(n=100, **kw):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8, generator=g)
    y = torch.arange(n)
    return Batcher(x, y, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), **kw), x, y


def test_batcher_covers_epoch_and_is_deterministic():
    b, x, y = _batcher(batch_size=16, train=True, seed=3)
    b.set_epoch(0)
    seen = torch.cat([yb for _, yb in b])
    assert len(seen) == 96 and len(set(seen.tolist())) == 96  # drop_last on train, no repeats
    b2, _, _ = _batcher(batch_size=16, train=True, seed=3)
    first = [xb for xb, _ in b]
    second = [xb for xb, _ in b2]
    assert all(torch.equal(a, c) for a, c in zip(first, second))
    b.set_epoch(1)
    assert not torch.equal(torch.cat([yb for _, yb in b]), seen)


def test_eval_batches_are_not_augmented_and_normalised():
    b, x, y = _batcher(batch_size=30, train=False, augment=Augment(crop=2, flip=True, cutout=4))
    xb, yb = next(iter(b))
    assert torch.equal(yb, y[:30])
    assert torch.allclose(xb, (x[:30].float() / 255 - 0.5) / 0.25)
    assert len(b) == 4 and sum(len(yb) for _, yb in b) == 100


def test_shards_are_disjoint_slices_of_one_permutation():
    shards = []
    for rank in range(3):
        b, _, _ = _batcher(batch_size=8, train=True, seed=1, rank=rank, world_size=3)
        shards.append(torch.cat([yb for _, yb in b]).tolist())
    flat = [v for s in shards for v in s]
    assert len(flat) == len(set(flat)) == 3 * 32 and all(len(s) == 32 for s in shards)


def test_random_crop_and_flip_are_what_they_say():
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.uint8).view(2, 1, 4, 4)
    g = torch.Generator().manual_seed(0)
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1))
    crops = lambda i: [padded[i, :, dy:dy + 4, dx:dx + 4] for dy in range(3) for dx in range(3)]  # noqa: E731
    out = random_crop_flip(x, 1, False, g)
    for i in range(2):
        assert any(torch.equal(out[i], c) for c in crops(i))
    flipped_any = False
    for seed in range(6):
        out = random_crop_flip(x, 1, True, torch.Generator().manual_seed(seed))
        for i in range(2):
            plain = any(torch.equal(out[i], c) for c in crops(i))
            mirrored = any(torch.equal(out[i], c.flip(-1)) for c in crops(i))
            assert plain or mirrored
            flipped_any |= mirrored and not plain
    assert flipped_any
    f = random_crop_flip(x, 0, True, torch.Generator().manual_seed(1))
    for i in range(2):
        assert torch.equal(f[i], x[i]) or torch.equal(f[i], x[i].flip(-1))
    c = cutout(torch.ones(4, 1, 8, 8), 4, torch.Generator().manual_seed(2), fill=0.0)
    assert ((c == 0).sum(dim=(1, 2, 3)) <= 16).all() and (c == 0).any()


def test_flip_from_the_mirrored_copy_equals_the_gather(monkeypatch):
    from convlab.data import batcher

    fast, x, _ = _batcher(batch_size=16, train=True, seed=2, augment=Augment(flip=True))
    assert fast.x_and_mirror is not None
    monkeypatch.setattr(batcher, "MIRROR_MAX_BYTES", 0)  # too big to mirror: the gather path
    slow, _, _ = _batcher(batch_size=16, train=True, seed=2, augment=Augment(flip=True))
    assert slow.x_and_mirror is None
    a, b = list(fast), list(slow)
    assert len(a) == len(b) == 6
    assert all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b))
    flips = [torch.allclose(xb[i], (x[ya[i]].flip(-1).float() / 255 - 0.5) / 0.25) for xb, ya in a for i in range(16)]
    assert 20 < sum(flips) < 76  # about half of the 96 images are mirrored


def test_augment_parsing():
    assert Augment.parse("crop=4,flip", Augment()) == Augment(crop=4, flip=True)
    assert Augment.parse("none", Augment(crop=4)) == Augment()
    assert Augment.parse(None, Augment(flip=True)) == Augment(flip=True)
    with pytest.raises(ConvlabError, match="unknown item 'rotate'"):
        Augment.parse("rotate=3", Augment())


def test_resize_and_channels_last():
    b, _, _ = _batcher(batch_size=4, resize=16, channels_last=True)
    xb, _ = next(iter(b))
    assert xb.shape == (4, 3, 16, 16) and xb.is_contiguous(memory_format=torch.channels_last)


# ---------------------------------------------------------------- real Fashion-MNIST and the CLI


@pytest.mark.skipif(not FMNIST.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_real_fashion_mnist():
    status = registry.verify("fashion-mnist", FMNIST)
    assert all(s["md5_ok"] for s in status.values())
    ds = load("fashion-mnist", FMNIST, download=False)
    assert ds.train_x.shape == (60000, 1, 28, 28) and ds.test_x.shape == (10000, 1, 28, 28)
    assert torch.bincount(ds.train_y).tolist() == [6000] * 10
    mean, std = registry._mean_std(ds.train_x.numpy())  # the constants are the data's own statistics
    assert mean[0] == pytest.approx(ds.mean[0], abs=1e-9) and std[0] == pytest.approx(ds.std[0], abs=1e-9)


def test_cli_data(tmp_path, capsys):
    make_idx_dataset(tmp_path / "fm")
    assert main(["data", "info", "fashion-mnist", "--data-dir", str(tmp_path / "fm"), "--json"]) == 0
    import json

    info = json.loads(capsys.readouterr().out)
    assert info["train"] == 50 and info["files"]["train-images-idx3-ubyte"]["md5_ok"] is False
    assert main(["data", "list", "--data-dir", str(tmp_path / "fm")]) == 0
    assert "fashion-mnist  found at" in capsys.readouterr().out
    assert main(["data", "info"]) == 2

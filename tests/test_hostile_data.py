"""Hostile and broken dataset files: every one a DataError naming the file and what is wrong, nothing guessed."""

import gzip
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from minidata import make_cifar10, make_idx_dataset

from convlab.data import registry
from convlab.data.formats import load_cifar_pickle, open_maybe_gz, read_image_folder, write_idx
from convlab.data.registry import load
from convlab.errors import DataError


def test_gzip_with_a_bad_deflate_stream(tmp_path):
    p = tmp_path / "train-images-idx3-ubyte.gz"
    p.write_bytes(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + b"\xff" * 40)
    with pytest.raises(DataError, match="corrupt or truncated gzip data"):
        open_maybe_gz(p)


def test_a_gzip_bomb_is_refused_before_it_fills_memory(tmp_path, monkeypatch):
    from convlab import limits

    monkeypatch.setattr(limits, "MAX_DATA_FILE_BYTES", 1 << 20)
    p = tmp_path / "bomb.gz"
    p.write_bytes(gzip.compress(b"\0" * (8 << 20)))
    with pytest.raises(DataError, match="decompresses to more than 1.0 MB"):
        open_maybe_gz(p)


def _cifar_with(tmp_path, changes):
    root = tmp_path / "c10"
    make_cifar10(root)
    d = {b"batch_label": b"x", b"labels": [0, 1, 2, 3, 4, 5], b"data": np.zeros((6, 3072), np.uint8)}
    d.update(changes)
    with open(root / "data_batch_1", "wb") as f:
        pickle.dump(d, f, protocol=2)
    return root


@pytest.mark.parametrize("change, words", [
    ({b"labels": ["a", "b", "c", "d", "e", "f"]}, "'labels' must be whole class numbers, found str"),
    ({b"labels": [0.5, 1, 2, 3, 4, 5]}, "'labels' must be whole class numbers, found float"),
    ({b"labels": np.array([0.5, 1, 2, 3, 4, 5])}, "not whole numbers"),
    ({b"labels": 7}, "'labels' must be a list of class numbers, got int"),
    ({b"labels": [[0, 1], [2], 3, 4, 5, 6]}, "found list"),
    ({b"data": [[1, 2, 3], [4]]}, "'data' must be an N×3072 uint8 array, got list"),
    ({b"labels": [10**30] * 6}, "beyond int64"),
])
def test_cifar_batches_of_the_wrong_types(tmp_path, change, words):
    root = _cifar_with(tmp_path, change)
    with pytest.raises(DataError, match=words):
        load("cifar10", data_dir=root, download=False)


def test_cifar_label_names_of_the_wrong_type(tmp_path):
    root = tmp_path / "c10"
    make_cifar10(root)
    with open(root / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": 5}, f, protocol=2)
    with pytest.raises(DataError, match="batches.meta: class names must be a list of strings, got int 5"):
        load("cifar10", data_dir=root, download=False)


def test_a_tiny_pickle_asking_numpy_for_a_huge_array(tmp_path):
    # numpy.core.multiarray._reconstruct(ndarray, (10**12,), b'b'): the 60-byte way to ask for a terabyte
    payload = (b"\x80\x02cnumpy.core.multiarray\n_reconstruct\nq\x00cnumpy\nndarray\nq\x01\x8a\x06\x00\x10\xa5\xd4\xe8\x00"
               b"\x85q\x02C\x01bq\x03\x87q\x04Rq\x05.")
    assert len(payload) < 100
    p = tmp_path / "data_batch_1"
    p.write_bytes(payload)
    with pytest.raises(DataError, match="1,000,000,000,000 elements is asked for"):
        load_cifar_pickle(p)


def test_float_labels_in_an_idx_file_cannot_exist_but_out_of_range_ones_are_caught(tmp_path):
    make_idx_dataset(tmp_path / "fm", classes=10)
    write_idx(tmp_path / "fm" / "t10k-labels-idx1-ubyte", np.full(20, 12, np.uint8))
    (tmp_path / "fm" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="label 12 is outside 0..9"):
        load("fashion-mnist", data_dir=tmp_path / "fm", download=False)


def test_train_and_test_of_different_sizes_are_refused_at_load(tmp_path):
    make_idx_dataset(tmp_path / "fm")
    (tmp_path / "fm" / "t10k-images-idx3-ubyte.gz").unlink()
    write_idx(tmp_path / "fm" / "t10k-images-idx3-ubyte", np.zeros((20, 32, 32), np.uint8))
    with pytest.raises(DataError, match="training images are 28×28 but the test images are 32×32"):
        load("fashion-mnist", data_dir=tmp_path / "fm", download=False)


def test_a_broken_data_dir_never_falls_back_to_another_copy(tmp_path, monkeypatch):
    make_idx_dataset(tmp_path / "elsewhere")
    monkeypatch.setenv("CONVLAB_DATA", str(tmp_path / "elsewhere"))  # a good copy the user did not ask for
    broken = tmp_path / "mine"
    broken.mkdir()
    (broken / "train-images-idx3-ubyte").write_bytes(b"half a download")
    with pytest.raises(DataError, match="not found in the folder given"):
        load("fashion-mnist", data_dir=broken, download=False)
    assert registry.find("fashion-mnist", broken) is None
    assert registry.find("fashion-mnist") == tmp_path / "elsewhere"


# ---------------------------------------------------------------- image folders

PIL = pytest.importorskip("PIL.Image")


def _png(path: Path, h: int, w: int, mode="L"):
    path.parent.mkdir(parents=True, exist_ok=True)
    PIL.new(mode, (w, h), 128).save(path)


def test_hidden_folders_are_not_classes(tmp_path):
    for c in ("cat", "dog"):
        for i in range(3):
            _png(tmp_path / c / f"{i}.png", 8, 8)
    _png(tmp_path / ".ipynb_checkpoints" / "0-checkpoint.png", 8, 8)
    _png(tmp_path / "cat" / ".hidden.png", 8, 8)
    x, y, classes = read_image_folder(tmp_path)
    assert classes == ["cat", "dog"] and len(x) == 6


def test_images_of_mixed_sizes_are_an_error_listing_the_sizes(tmp_path):
    _png(tmp_path / "a" / "0.png", 8, 8)
    _png(tmp_path / "a" / "1.png", 8, 8)
    _png(tmp_path / "b" / "0.png", 16, 12)
    with pytest.raises(DataError, match=r"differ in size — 8×8 \(2 image\(s\)\), 16×12 \(1 image\(s\)\); convlab does "
                                        r"not guess a resize"):
        read_image_folder(tmp_path)


def test_test_images_must_match_the_training_size(tmp_path):
    for split, side in (("train", 8), ("test", 10)):
        for c in ("a", "b"):
            _png(tmp_path / split / c / "0.png", side, side)
    with pytest.raises(DataError, match="differ in size"):
        load(f"folder:{tmp_path}")


def test_a_decompression_bomb_png_is_a_data_error(tmp_path):
    # a valid PNG header claiming 100000×100000 pixels, and no image data worth the name
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 0, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b""))
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "bomb.png").write_bytes(png)
    with pytest.raises(DataError, match="bomb.png"):
        read_image_folder(tmp_path)


@pytest.mark.parametrize("encoding, words", [("ltin1", "'ltin1'"), ("rot13", "'rot13'"), ("latin1", None)])
def test_a_pickle_naming_another_codec_for_its_bytes(tmp_path, encoding, words):
    # Python 3 pickles bytes at protocol 2 as _codecs.encode('...', 'latin1'); a corrupt file may name any codec
    text = pickle.dumps({"label_names": ["a"], "data": b"\xff\x01"}, protocol=2)
    assert text.count(b"latin1") == 1
    p = tmp_path / "batches.meta"
    p.write_bytes(text.replace(b"X\x06\x00\x00\x00latin1", b"X" + struct.pack("<I", len(encoding)) + encoding.encode()))
    if words is None:
        assert load_cifar_pickle(p)["data"] == b"\xff\x01"
        return
    with pytest.raises(DataError, match=f"batches.meta: not a plain CIFAR batch — encode\\(str, {words}\\)"):
        load_cifar_pickle(p)

"""Datasets by name: where their files are found, how they are fetched and checked, and loading
them as uint8 tensors N×C×H×W with int64 labels, class names and per-channel mean/std.

A dataset is looked for, in order: an explicit ``data_dir``, ``$CONVLAB_DATA``, the user cache
(``~/.cache/convlab/<name>``), torchvision's layout under ``./data`` (``FashionMNIST/raw``,
``cifar-10-batches-py``, ...), and the system location (Debian's ``dataset-fashion-mnist`` package
installs ``/usr/share/datasets/fashion-mnist``). Otherwise it is downloaded into the user cache
(checksummed; a temp name until verified), or a ``DataError`` lists every place looked.
"""

from __future__ import annotations

import os
import tarfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import DataError, did_you_mean
from .formats import IDX_IMAGES, IDX_LABELS, check_labels, md5, open_maybe_gz, read_cifar_batch, read_idx, \
    read_image_folder, load_cifar_pickle

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot"]
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@dataclass(frozen=True)
class Source:
    """One dataset's files, checksums and mirrors."""

    name: str
    kind: str                       # idx | cifar
    files: tuple[str, ...]          # names relative to the dataset folder (without .gz)
    md5: dict                       # file -> md5 of its (decompressed) content
    layouts: tuple[str, ...]        # sub-folders under a root where the files may sit
    system: tuple[str, ...] = ()    # system folders (distribution packages)
    mirrors: tuple[str, ...] = ()   # URLs of the folder holding <file>.gz (idx) or the archive (cifar)
    archive: str = ""               # cifar: archive file name
    archive_md5: str = ""
    gz_md5: dict = field(default_factory=dict)
    classes: tuple[str, ...] = ()
    flip: bool = True               # horizontal flips are a sensible default augmentation
    install_hint: str = ""
    train_count: int = 0            # images in the published training split
    mean: tuple = ()                # per-channel mean/std of the published training split, in [0, 1]
    std: tuple = ()


SOURCES: dict[str, Source] = {}


def _add(src: Source) -> None:
    SOURCES[src.name] = src


_add(Source(
    "fashion-mnist", "idx", IDX_FILES,
    md5={"train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a", "train-labels-idx1-ubyte":
         "9018921c3c673c538a1fc5bad174d6f9", "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
         "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965"},
    layouts=("", "fashion-mnist", "FashionMNIST/raw"), system=("/usr/share/datasets/fashion-mnist",),
    mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    gz_md5={"train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d", "train-labels-idx1-ubyte":
            "25c81989df183df01b3e8a0aad5dffbe", "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310"},
    classes=tuple(FASHION_CLASSES), flip=True,
    install_hint="apt-get install dataset-fashion-mnist (Debian/Ubuntu), or: convlab data fetch fashion-mnist",
    train_count=60_000, mean=(0.28604059698879547,), std=(0.3530242445149226,)))

_add(Source(
    "mnist", "idx", IDX_FILES,
    md5={"train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb", "train-labels-idx1-ubyte":
         "a25bea736e30d166cdddb491f175f624", "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
         "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637"},
    layouts=("", "mnist", "MNIST/raw"), system=("/usr/share/datasets/mnist",),
    mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
    gz_md5={"train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873", "train-labels-idx1-ubyte":
            "d53e105ee54ea40749a09fcbcd1e9432", "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c"},
    classes=tuple(str(i) for i in range(10)), flip=False,
    install_hint="convlab data fetch mnist", train_count=60_000, mean=(0.1307,), std=(0.3081,)))

_CIFAR10_FILES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch",
                  "batches.meta")
_add(Source(
    "cifar10", "cifar", _CIFAR10_FILES,
    md5={"data_batch_1": "c99cafc152244af753f735de768cd75f", "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
         "data_batch_3": "54ebc095f3ab1f0389bbae665268c751", "data_batch_4": "634d18415352ddfa80567beed471001a",
         "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb", "test_batch": "40351d587109b95175f43aff81a1287e",
         "batches.meta": "5ff9c542aee3614f3951f8cda6e48888"},
    layouts=("", "cifar-10-batches-py", "cifar10/cifar-10-batches-py"),
    mirrors=("https://www.cs.toronto.edu/~kriz/",), archive="cifar-10-python.tar.gz",
    archive_md5="c58f30108f718f92721af3b95e74349a", classes=tuple(CIFAR10_CLASSES), flip=True,
    install_hint="convlab data fetch cifar10", train_count=50_000,
    mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616)))

_add(Source(
    "cifar100", "cifar", ("train", "test", "meta"), md5={},
    layouts=("", "cifar-100-python", "cifar100/cifar-100-python"),
    mirrors=("https://www.cs.toronto.edu/~kriz/",), archive="cifar-100-python.tar.gz",
    archive_md5="eb9058c3a382ffc7106e4002c42a8d85", flip=True, install_hint="convlab data fetch cifar100",
    train_count=50_000, mean=(0.5071, 0.4865, 0.4409), std=(0.2673, 0.2564, 0.2762)))


def source(name: str) -> Source:
    if name not in SOURCES:
        raise DataError(f"unknown dataset {name!r}{did_you_mean(name, SOURCES, 2)}; known: {', '.join(SOURCES)}, "
                        f"or folder:PATH")
    return SOURCES[name]


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "convlab"


def roots(data_dir: str | os.PathLike | None) -> list[tuple[str, Path]]:
    out = []
    if data_dir:
        out.append(("--data-dir", Path(data_dir)))
    if os.environ.get("CONVLAB_DATA"):
        out.append(("$CONVLAB_DATA", Path(os.environ["CONVLAB_DATA"])))
    out.append(("user cache", cache_dir()))
    out.append(("torchvision layout under ./data", Path("data")))
    return out


def _has_files(folder: Path, src: Source) -> bool:
    return all((folder / f).is_file() or (folder / f"{f}.gz").is_file() for f in src.files)


def candidates(src: Source, data_dir=None) -> list[tuple[str, Path]]:
    out = []
    for label, root in roots(data_dir):
        subs = src.layouts if label != "user cache" else (src.name, *[f"{src.name}/{x}" for x in src.layouts if x])
        for sub in subs:
            out.append((label, root / sub if sub else root))
    for s in src.system:
        out.append(("system", Path(s)))
    seen, uniq = set(), []
    for label, p in out:
        if p not in seen:
            seen.add(p)
            uniq.append((label, p))
    return uniq


def find(name: str, data_dir=None) -> Path | None:
    """The folder holding the dataset's files. An explicit ``data_dir`` is the only place looked: the user
    asked for that folder, so another copy elsewhere (the system's) is never taken in its place."""
    src = source(name)
    places = candidates(src, data_dir)
    if data_dir:
        places = [(label, p) for label, p in places if label == "--data-dir"]
    for _, folder in places:
        if _has_files(folder, src):
            return folder
    return None


def _file(folder: Path, f: str) -> Path:
    return folder / f if (folder / f).is_file() else folder / f"{f}.gz"


# ---------------------------------------------------------------------------------------------
# download


def _download(url: str, dest: Path, expect_md5: str | None, progress: bool) -> None:
    """Fetch ``url`` to ``dest`` through a temp name; rename only once the checksum matches."""
    import hashlib

    from ..fileio import atomic_open

    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.md5()
    try:
        with atomic_open(dest, f" (downloading {url})") as out, urllib.request.urlopen(url, timeout=30) as resp:
            total = int(resp.headers.get("Content-Length") or 0)
            bar = None
            if progress:
                from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

                bar = Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                               TransferSpeedColumn(), transient=True)
                bar.start()
                task = bar.add_task(dest.name, total=total or None)
            try:
                while chunk := resp.read(1 << 16):
                    out.write(chunk)
                    digest.update(chunk)
                    if bar:
                        bar.advance(task, len(chunk))
            finally:
                if bar:
                    bar.stop()
            if expect_md5 and digest.hexdigest() != expect_md5:  # raised inside: the file is not kept
                raise DataError(f"{url}: checksum mismatch (expected md5 {expect_md5}); nothing was kept")
    except OSError as e:
        raise DataError(f"cannot download {url}: {getattr(e, 'reason', e)}") from None


def fetch(name: str, data_dir=None, progress: bool = True) -> Path:
    """Find a dataset, or download it into ``data_dir`` (or the user cache); returns its folder."""
    src = source(name)
    found = find(name, data_dir)
    if found is not None:
        return found
    dest_root = Path(data_dir) if data_dir else cache_dir() / src.name
    errors = []
    if src.kind == "idx":
        for mirror in src.mirrors:
            try:
                for f in src.files:
                    target = dest_root / f"{f}.gz"
                    if not target.is_file():
                        _download(mirror + f + ".gz", target, src.gz_md5.get(f), progress)
                return dest_root
            except DataError as e:
                errors.append(str(e))
    else:
        for mirror in src.mirrors:
            try:
                archive = dest_root / src.archive
                _download(mirror + src.archive, archive, src.archive_md5, progress)
                with tarfile.open(archive) as tar:
                    tar.extractall(dest_root, filter="data")
                archive.unlink()
                folder = find(name, dest_root)
                if folder is None:
                    raise DataError(f"{archive}: the archive did not hold {', '.join(src.files)}")
                return folder
            except (DataError, tarfile.TarError) as e:
                errors.append(str(e))
    raise not_found(src, data_dir, errors)


def not_found(src: Source, data_dir, errors: list[str] = ()) -> DataError:
    places = candidates(src, data_dir)
    if data_dir:
        places = [(label, p) for label, p in places if label == "--data-dir"]
        looked = "\n".join(f"  - {p} ({label})" for label, p in places)
        tried = ("\ndownload failed:\n" + "\n".join(f"  - {e}" for e in errors)) if errors else ""
        return DataError(f"dataset {src.name!r} not found in the folder given ({data_dir}); looked in:\n{looked}{tried}\n"
                         f"it needs {', '.join(src.files)} (or their .gz); fix the folder, or leave --data-dir out "
                         f"to use the usual places")
    looked = "\n".join(f"  - {p} ({label})" for label, p in places)
    tried = ("\ndownload failed:\n" + "\n".join(f"  - {e}" for e in errors)) if errors else ""
    return DataError(f"dataset {src.name!r} not found; looked in:\n{looked}{tried}\n"
                     f"to get it: {src.install_hint}, or point --data-dir / $CONVLAB_DATA at a folder holding "
                     f"{', '.join(src.files[:2])}, ...")


# ---------------------------------------------------------------------------------------------
# loading


@dataclass
class Dataset:
    """A dataset in memory: uint8 images N×C×H×W, int64 labels, class names, per-channel mean/std
    (of the training images, in [0, 1] units)."""

    name: str
    train_x: "object"
    train_y: "object"
    test_x: "object"
    test_y: "object"
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    root: Path | None = None
    flip: bool = True

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.train_x.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def input_shape(self, resize: int | None = None) -> tuple[int, int, int]:
        """The C×H×W a model sees: the images' own size, or resize×resize (``--resize``)."""
        c, h, w = self.shape
        return (c, resize, resize) if resize else (c, h, w)

    def describe(self) -> dict:
        return {"name": self.name, "root": str(self.root) if self.root else None, "shape": list(self.shape),
                "train": int(self.train_x.shape[0]), "test": int(self.test_x.shape[0]), "classes": self.classes,
                "mean": [round(m, 4) for m in self.mean], "std": [round(s, 4) for s in self.std],
                "flip": self.flip}


def _mean_std(x: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Exact per-channel mean and std in [0, 1] units, from a histogram of the uint8 values."""
    means, stds = [], []
    values = np.arange(256, dtype=np.float64) / 255.0
    for ch in range(x.shape[1]):
        counts = np.bincount(np.ascontiguousarray(x[:, ch]).reshape(-1), minlength=256).astype(np.float64)
        n = counts.sum()
        mean = float((counts * values).sum() / n)
        var = float((counts * (values - mean) ** 2).sum() / n)
        means.append(mean)
        stds.append(max(var, 1e-12) ** 0.5)
    return tuple(means), tuple(stds)


def _load_idx(src: Source, folder: Path):
    tx = read_idx(_file(folder, "train-images-idx3-ubyte"), IDX_IMAGES)
    ty = read_idx(_file(folder, "train-labels-idx1-ubyte"), IDX_LABELS).astype(np.int64)
    vx = read_idx(_file(folder, "t10k-images-idx3-ubyte"), IDX_IMAGES)
    vy = read_idx(_file(folder, "t10k-labels-idx1-ubyte"), IDX_LABELS).astype(np.int64)
    for path, x in ((_file(folder, "train-images-idx3-ubyte"), tx), (_file(folder, "t10k-images-idx3-ubyte"), vx)):
        if x.ndim != 3:
            raise DataError(f"{path}: expected N×H×W images, found {x.ndim} dimensions")
    check_labels(_file(folder, "train-labels-idx1-ubyte"), ty, len(src.classes), len(tx))
    check_labels(_file(folder, "t10k-labels-idx1-ubyte"), vy, len(src.classes), len(vx))
    _same_size(folder, tx.shape[1:], vx.shape[1:])
    return tx[:, None], ty, vx[:, None], vy, list(src.classes)


def _same_size(folder, train_hw, test_hw) -> None:
    if tuple(train_hw) != tuple(test_hw):
        raise DataError(f"{folder}: the training images are {'×'.join(map(str, train_hw))} but the test images are "
                        f"{'×'.join(map(str, test_hw))}; both splits must have one size (a model takes one input size)")


def _class_names(path: Path, names, expect: int | None = None) -> list[str]:
    if not isinstance(names, (list, tuple)) or not all(isinstance(c, (str, bytes)) for c in names):
        raise DataError(f"{path}: class names must be a list of strings, got {type(names).__name__}"
                        + (f" {str(names)[:40]}" if not isinstance(names, (list, tuple)) else " with other items"))
    out = [c.decode("latin1") if isinstance(c, bytes) else c for c in names]
    if expect is not None and len(out) != expect:
        raise DataError(f"{path}: expected {expect} class names, found {len(out)}")
    if not out:
        raise DataError(f"{path}: the list of class names is empty")
    return out


def _load_cifar(src: Source, folder: Path):
    if src.name == "cifar10":
        meta = load_cifar_pickle(folder / "batches.meta")
        classes = _class_names(folder / "batches.meta", meta.get("label_names", list(src.classes)))
        parts = [read_cifar_batch(folder / f"data_batch_{i}", "labels", len(classes)) for i in range(1, 6)]
        tx = np.concatenate([p[0] for p in parts])
        ty = np.concatenate([p[1] for p in parts])
        vx, vy = read_cifar_batch(folder / "test_batch", "labels", len(classes))
    else:
        meta = load_cifar_pickle(folder / "meta")
        classes = _class_names(folder / "meta", meta.get("fine_label_names", []), 100)
        tx, ty = read_cifar_batch(folder / "train", "fine_labels", 100)
        vx, vy = read_cifar_batch(folder / "test", "fine_labels", 100)
    return tx, ty, vx, vy, classes


def _load_folder(path: str):
    root = Path(path)
    if (root / "train").is_dir() and (root / "test").is_dir():
        tx, ty, classes = read_image_folder(root / "train")
        vx, vy, classes2 = read_image_folder(root / "test", size=tx.shape[2:])
        if classes2 != classes:
            raise DataError(f"{root}: train classes {classes} differ from test classes {classes2}")
        _same_size(root, tx.shape[1:], vx.shape[1:])
    else:  # a deterministic 10% hold-out
        x, y, classes = read_image_folder(root)
        if len(x) < 2:
            raise DataError(f"{root}: {len(x)} image; a training and a test split need at least 2")
        order = np.random.default_rng(0).permutation(len(x))
        n_test = max(1, len(x) // 10)
        vx, vy, tx, ty = x[order[:n_test]], y[order[:n_test]], x[order[n_test:]], y[order[n_test:]]
    return tx, ty, vx, vy, classes


def load(name: str, data_dir=None, download: bool = True, progress: bool = True) -> Dataset:
    """Load a dataset by name (``fashion-mnist``, ``mnist``, ``cifar10``, ``cifar100``, ``folder:PATH``)."""
    import torch

    if name.startswith("folder:"):
        tx, ty, vx, vy, classes = _load_folder(name.split(":", 1)[1])
        root, flip = Path(name.split(":", 1)[1]), True
    else:
        src = source(name)
        folder = fetch(name, data_dir, progress) if download else find(name, data_dir)
        if folder is None:
            raise not_found(src, data_dir)
        loader: Callable = _load_idx if src.kind == "idx" else _load_cifar
        tx, ty, vx, vy, classes = loader(src, folder)
        root, flip = folder, src.flip
    if not name.startswith("folder:") and src.mean and len(tx) == src.train_count:
        mean, std = src.mean, src.std  # the published split: its statistics are known (tests recompute them)
    else:
        mean, std = _mean_std(tx)
    return Dataset(name, torch.from_numpy(np.ascontiguousarray(tx)), torch.from_numpy(ty),
                   torch.from_numpy(np.ascontiguousarray(vx)), torch.from_numpy(vy), classes, mean, std, root, flip)


def verify(name: str, data_dir=None) -> dict:
    """Checksum status of each file of a found dataset (md5 of the decompressed content)."""
    src = source(name)
    folder = find(name, data_dir)
    if folder is None:
        raise not_found(src, data_dir)
    status = {}
    for f in src.files:
        path = _file(folder, f)
        data = open_maybe_gz(path)
        want = src.md5.get(f)
        ok = None if want is None else md5(data) == want
        status[f] = {"path": str(path), "bytes": len(data), "md5_ok": ok}
    return status

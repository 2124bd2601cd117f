"""Readers for the standard dataset files: IDX (MNIST, Fashion-MNIST), CIFAR python pickles (through a
restricted unpickler that executes nothing), and image folders (one sub-folder per class).

Every reader checks what it reads and raises :class:`~convlab.errors.DataError` naming the file and
what is wrong: wrong magic number, truncated data, count mismatches, labels out of range.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
from pathlib import Path

import numpy as np

from ..errors import DataError

IDX_IMAGES, IDX_LABELS = 2051, 2049


def open_maybe_gz(path: Path) -> bytes:
    """The file's bytes, decompressed when it is gzip (by content, not by name)."""
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise DataError(f"{path}: corrupt or truncated gzip data ({e}); delete it and fetch it again") from None
    return raw


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def read_idx(path: Path, expect_magic: int | None = None, data: bytes | None = None) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed) into a uint8 array.

    Header: two zero bytes, a type byte (0x08 = uint8), the number of dimensions, then one
    big-endian uint32 per dimension; then the data, row-major.
    """
    data = open_maybe_gz(path) if data is None else data
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DataError(f"{path}: not an IDX file (the first two bytes must be zero)")
    if data[2] != 0x08:
        raise DataError(f"{path}: IDX type byte is 0x{data[2]:02x}; convlab reads unsigned bytes (0x08)")
    ndim = data[3]
    magic = int.from_bytes(data[:4], "big")
    if expect_magic is not None and magic != expect_magic:
        what = {IDX_IMAGES: "an image file (2051)", IDX_LABELS: "a label file (2049)"}
        raise DataError(f"{path}: magic number {magic}, expected {what.get(expect_magic, expect_magic)}; "
                        f"are the image and label files swapped?")
    head = 4 + 4 * ndim
    if len(data) < head:
        raise DataError(f"{path}: truncated IDX header")
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    n = int(np.prod(dims)) if dims else 0
    if len(data) - head != n:
        raise DataError(f"{path}: header promises {'x'.join(map(str, dims))} = {n:,} bytes of data but the file "
                        f"holds {len(data) - head:,}; the file is truncated or corrupt — delete it and fetch it again")
    return np.frombuffer(data, dtype=np.uint8, offset=head).reshape(dims).copy()  # writable, owns its memory


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> None:
    """Write a uint8 array as an IDX file (used by tests and by anyone making a miniature dataset)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    head = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    data = head + array.tobytes()
    from ..fileio import write_bytes

    write_bytes(path, gzip.compress(data) if compress else data)


def check_labels(path, labels: np.ndarray, num_classes: int, n_images: int | None = None) -> None:
    if n_images is not None and len(labels) != n_images:
        raise DataError(f"{path}: {len(labels):,} labels for {n_images:,} images; the image and label files "
                        f"do not belong together")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        bad = int(labels.max() if labels.max() >= num_classes else labels.min())
        raise DataError(f"{path}: label {bad} is outside 0..{num_classes - 1}")


# ---------------------------------------------------------------------------------------------
# CIFAR pickles


class _RestrictedUnpickler(pickle.Unpickler):
    """Admits only what CIFAR's batches hold: numpy arrays (and their dtypes), lists, dicts, strings,
    bytes and numbers. Any other global — the way a pickle runs code — is refused before it is loaded."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("copyreg", "_reconstructor"),
        ("_codecs", "encode"),  # how Python 3 writes bytes at protocol 2: encode(text, 'latin1')
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused to load global {module}.{name}")


def load_cifar_pickle(path: Path) -> dict:
    """Load one CIFAR python batch safely; keys are decoded to str."""
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None
    try:
        obj = _RestrictedUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except pickle.UnpicklingError as e:
        raise DataError(f"{path}: not a plain CIFAR batch — {e}; nothing from it was executed") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as e:
        raise DataError(f"{path}: truncated or corrupt pickle ({type(e).__name__}: {e})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a dict, found {type(obj).__name__}")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}


def read_cifar_batch(path: Path, label_key: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    d = load_cifar_pickle(path)
    if "data" not in d or label_key not in d:
        raise DataError(f"{path}: missing key {'data' if 'data' not in d else label_key!r} "
                        f"(keys: {', '.join(map(str, d))})")
    data = np.asarray(d["data"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"{path}: 'data' must be N×3072 uint8 rows, got {data.shape} {data.dtype}")
    labels = np.asarray(d[label_key], dtype=np.int64)
    check_labels(path, labels, num_classes, len(data))
    return data.reshape(-1, 3, 32, 32), labels  # rows are channel-major: R plane, G plane, B plane


# ---------------------------------------------------------------------------------------------
# image folders

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}


def read_image_folder(root: Path, size: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Read ``root/<class>/<image>`` files into N×C×H×W uint8 (all resized to ``size`` or the first
    image's size). Needs Pillow (``pip install convlab[images]``)."""
    try:
        from PIL import Image
    except ImportError:
        raise DataError("reading image folders needs Pillow: pip install pillow") from None
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder (folder:PATH needs one sub-folder per class)")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not classes:
        raise DataError(f"{root}: no class sub-folders; expected {root}/<class name>/<images>")
    images, labels = [], []
    mode = None
    for ci, c in enumerate(classes):
        for f in sorted((root / c).iterdir()):
            if f.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                with Image.open(f) as im:
                    if mode is None:
                        mode = "L" if im.mode in ("L", "1", "I;16") else "RGB"
                        size = size or (im.height, im.width)
                    im = im.convert(mode)
                    if (im.height, im.width) != tuple(size):
                        im = im.resize((size[1], size[0]))
                    arr = np.asarray(im, dtype=np.uint8)
            except OSError as e:
                raise DataError(f"{f}: cannot read image ({e})") from None
            images.append(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1))
            labels.append(ci)
    if not images:
        raise DataError(f"{root}: no images found in the class folders ({', '.join(classes)})")
    return np.stack(images), np.asarray(labels, dtype=np.int64), classes

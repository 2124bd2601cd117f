"""Readers for the standard dataset files: IDX (MNIST, Fashion-MNIST), CIFAR python pickles (through a
restricted unpickler that executes nothing), and image folders (one sub-folder per class).

Every reader checks what it reads and raises :class:`~convlab.errors.DataError` naming the file and
what is wrong: wrong magic number, truncated data, count mismatches, labels out of range.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import pickle
import zlib
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
        return _gunzip(path, raw)
    return raw


def _gunzip(path, raw: bytes) -> bytes:
    """Decompress gzip data (every member), refusing corrupt data and more than MAX_DATA_FILE_BYTES of output."""
    from ..limits import MAX_DATA_FILE_BYTES, available_memory, gib

    cap = min(MAX_DATA_FILE_BYTES, max(1, available_memory() // 2))
    out, data = [], raw
    size = 0
    try:
        while data:
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            chunk = d.decompress(data, cap - size + 1)
            size += len(chunk)
            out.append(chunk)
            if size > cap:
                raise DataError(f"{path}: decompresses to more than {gib(cap)} (convlab's limit for one dataset file, "
                                f"or half the memory available); it is not a dataset file convlab reads")
            if not d.eof:
                raise DataError(f"{path}: corrupt or truncated gzip data (it ends early); delete it and fetch it again")
            data = d.unused_data
            data = data.lstrip(b"\0")  # gzip allows trailing zero padding
    except zlib.error as e:
        raise DataError(f"{path}: corrupt or truncated gzip data ({e}); delete it and fetch it again") from None
    return b"".join(out)


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
    n = math.prod(dims) if dims else 0
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


def integer_labels(path, raw, key: str = "labels") -> np.ndarray:
    """A flat int64 array of class numbers from a list or array, refusing what is not whole numbers (a float
    label is never truncated), ragged or nested."""
    if isinstance(raw, np.ndarray):
        arr = raw
    elif isinstance(raw, (list, tuple)):
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in raw):
            bad = next(v for v in raw if not isinstance(v, (int, np.integer)) or isinstance(v, bool))
            raise DataError(f"{path}: {key!r} must be whole class numbers, found {type(bad).__name__} {str(bad)[:30]}")
        arr = np.array(raw, dtype=object)
        if any(v > np.iinfo(np.int64).max or v < np.iinfo(np.int64).min for v in raw):
            raise DataError(f"{path}: {key!r} holds a class number beyond int64")
        arr = arr.astype(np.int64)
    else:
        raise DataError(f"{path}: {key!r} must be a list of class numbers, got {type(raw).__name__}")
    if arr.ndim != 1:
        raise DataError(f"{path}: {key!r} must be a flat list of class numbers, got shape {arr.shape}")
    if arr.dtype.kind in "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise DataError(f"{path}: {key!r} holds labels that are not whole numbers (e.g. {arr[arr != np.round(arr)][:1]}); "
                            f"class labels are integers")
        arr = arr.astype(np.int64)
    elif arr.dtype.kind not in "iu":
        raise DataError(f"{path}: {key!r} must be integers, got {arr.dtype}")
    return arr.astype(np.int64)


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
            found = super().find_class(module, name)
            if name == "_reconstruct":
                return _bounded_reconstruct(found)
            if name == "encode":
                return _latin1_encode
            return found
        raise pickle.UnpicklingError(f"refused to load global {module}.{name}")


def _latin1_encode(text, encoding="latin1", errors="strict"):
    """``_codecs.encode`` as pickles of bytes use it, and only so: text to latin-1 bytes (a corrupt or hostile
    pickle could name any codec, or a codec's error handler)."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1") or errors != "strict":
        raise pickle.UnpicklingError(f"encode({type(text).__name__}, {str(encoding)[:20]!r}) is not how a CIFAR "
                                     f"batch stores bytes")
    try:
        return text.encode("latin1")
    except UnicodeEncodeError:
        raise pickle.UnpicklingError("bytes stored as text outside latin-1") from None


def _bounded_reconstruct(reconstruct):
    """numpy's array reconstructor, refusing first a shape no real batch has (a 60-byte pickle can ask numpy
    for terabytes)."""

    def make(cls, shape, dtype_code, *rest):
        try:
            n = math.prod(int(v) for v in (shape if isinstance(shape, (tuple, list)) else (shape,)))
        except (TypeError, ValueError):
            raise pickle.UnpicklingError(f"array shape {str(shape)[:40]} is not a list of sizes") from None
        if n > 1 << 31:
            raise pickle.UnpicklingError(f"an array of {n:,} elements is asked for; no CIFAR batch is that large")
        return reconstruct(cls, shape, dtype_code, *rest)

    return make


def load_cifar_pickle(path: Path) -> dict:
    """Load one CIFAR python batch safely; keys are decoded to str."""
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None
    try:
        obj = _RestrictedUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except pickle.UnpicklingError as e:
        raise DataError(f"{path}: not a plain CIFAR batch — {str(e)[:200]}; nothing from it was executed") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, OverflowError, MemoryError,
            RecursionError, UnicodeError, LookupError, SystemError) as e:
        raise DataError(f"{path}: truncated or corrupt pickle ({type(e).__name__}: {str(e)[:200]})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a dict, found {type(obj).__name__}")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}


def read_cifar_batch(path: Path, label_key: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    d = load_cifar_pickle(path)
    if "data" not in d or label_key not in d:
        raise DataError(f"{path}: missing key {'data' if 'data' not in d else label_key!r} "
                        f"(keys: {', '.join(map(str, d))})")
    data = d["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        what = f"{data.shape} {data.dtype}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{path}: 'data' must be an N×3072 uint8 array, got {what}")
    labels = integer_labels(path, d[label_key], label_key)
    check_labels(path, labels, num_classes, len(data))
    return data.reshape(-1, 3, 32, 32), labels  # rows are channel-major: R plane, G plane, B plane


# ---------------------------------------------------------------------------------------------
# image folders

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}


def read_image_folder(root: Path, size: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Read ``root/<class>/<image>`` files into N×C×H×W uint8. Needs Pillow (``pip install convlab[images]``).

    Hidden folders and files (``.ipynb_checkpoints``, ``.DS_Store``) are skipped. Every image must have the
    same size (``size`` (H, W) when given: the test folder must match the training images); convlab does not
    guess a resize, so a folder of mixed sizes is an error that lists the sizes found. Colour images and
    greyscale ones are read in the first image's mode (L or RGB)."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise DataError("reading image folders needs Pillow: pip install pillow") from None
    from ..limits import MAX_INT

    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder (folder:PATH needs one sub-folder per class)")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"{root}: no class sub-folders; expected {root}/<class name>/<images>")
    images, labels = [], []
    mode = None
    first: tuple[Path, tuple[int, int]] | None = None
    sizes: dict[tuple[int, int], int] = {}
    max_pixels = Image.MAX_IMAGE_PIXELS or MAX_INT
    for ci, c in enumerate(classes):
        for f in sorted((root / c).iterdir()):
            if f.name.startswith(".") or f.suffix.lower() not in IMAGE_SUFFIXES or not f.is_file():
                continue
            try:
                with Image.open(f) as im:
                    if im.width * im.height > max_pixels:
                        raise DataError(f"{f}: {im.width}×{im.height} pixels, beyond Pillow's limit of "
                                        f"{max_pixels:,} pixels a file (a decompression bomb, or a photo far larger "
                                        f"than a training image); shrink it")
                    hw = (im.height, im.width)
                    if mode is None:
                        mode = "L" if im.mode in ("L", "1", "I;16") else "RGB"
                        first = (f, tuple(size) if size is not None else hw)
                    sizes[hw] = sizes.get(hw, 0) + 1
                    if hw != first[1]:
                        continue  # reported below, with every size found
                    arr = np.asarray(im.convert(mode), dtype=np.uint8)
            except DataError:
                raise
            except (OSError, UnidentifiedImageError, SyntaxError, ValueError, Image.DecompressionBombError,
                    MemoryError) as e:
                raise DataError(f"{f}: cannot read image ({type(e).__name__}: {str(e)[:120]})") from None
            images.append(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1))
            labels.append(ci)
    if len(sizes) > 1 or (first and sizes and first[1] not in sizes):
        found = ", ".join(f"{h}×{w} ({n} image(s))" for (h, w), n in sorted(sizes.items(), key=lambda kv: -kv[1]))
        want = f"{first[1][0]}×{first[1][1]}"
        reason = "the training images' size" if size is not None else f"the size of the first, {first[0].name}"
        raise DataError(f"{root}: the images differ in size — {found}; convlab does not guess a resize. Resize them "
                        f"all to one size (e.g. {want}, {reason}), e.g. with Pillow's Image.resize, then train with "
                        f"--resize N if the model wants another size")
    if not images:
        raise DataError(f"{root}: no images found in the class folders ({', '.join(classes)})")
    return np.stack(images), np.asarray(labels, dtype=np.int64), classes

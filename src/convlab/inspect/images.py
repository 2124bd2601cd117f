"""Image files as a model input: read, converted and normalised like the training data, saying what was done."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import DataError, UsageError, did_you_mean


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


@dataclass
class LoadedImage:
    """An image file as a model input: ``x`` (C, H, W) normalised, ``shown`` (C, H, W) uint8 as the model sees
    it before normalisation, and ``steps``, what was done, in words."""

    x: torch.Tensor
    shown: torch.Tensor
    steps: list[str]
    source: str


def _border_mean(a: torch.Tensor) -> float:
    """Mean value of the outermost pixels of (…, H, W) images, in 0..255."""
    a = a.float()
    edges = torch.cat([a[..., 0, :].flatten(), a[..., -1, :].flatten(), a[..., :, 0].flatten(), a[..., :, -1].flatten()])
    return float(edges.mean())


def load_image(path, channels: int, mean, std, size: tuple[int, int] | None = None, *, invert: bool = False,
               min_size: tuple[int, int] | None = None, max_side: int | None = None,
               reference: torch.Tensor | None = None) -> LoadedImage:
    """Read a PNG/JPEG (anything Pillow opens) and make it the model's input.

    Transparent pixels are laid over white; the image is converted to greyscale (ITU-R 601 luma, as
    Pillow's "L") or RGB to match ``channels``; with ``size`` (H, W) it is padded to the target's
    aspect with its border colour (so nothing is cut off) and resized; without, it keeps its size,
    enlarged to ``min_size`` and shrunk to ``max_side`` where needed. ``invert`` turns light-on-dark
    into dark-on-light (Fashion-MNIST draws light objects on black). Then (x/255 − mean)/std with
    the dataset's per-channel mean and std. ``reference`` (uint8 dataset images) adds a hint when the
    file's border brightness is far from the dataset's.
    """
    try:
        from PIL import Image, ImageOps, UnidentifiedImageError
    except ImportError:
        raise DataError("reading an image file needs Pillow: pip install 'convlab[images]' (or pip install pillow)") from None
    import numpy as np

    p = Path(path)
    if not p.is_file():
        raise UsageError(f"{path}: no such image file")
    try:
        with Image.open(p) as im:
            im.load()
            img = im
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{path}: not an image Pillow can read ({type(e).__name__}); give a PNG, JPEG, BMP, GIF, "
                        f"TIFF or WebP file") from None
    steps = [f"read {p.name}: {img.width} wide, {img.height} high, {img.mode}"]
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        base = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(base, img.convert("RGBA"))
        steps.append("transparent pixels laid over white")
    if channels == 1:
        if img.mode != "L":
            img = img.convert("L")
            steps.append("converted to greyscale (luma 0.299 R + 0.587 G + 0.114 B)")
    elif channels == 3:
        if img.mode != "RGB":
            img = img.convert("RGB")
            steps.append("converted to RGB")
    else:
        raise UsageError(f"the model reads {channels}-channel images; image files give 1 (grey) or 3 (RGB)")
    if invert:
        img = ImageOps.invert(img)
        steps.append("inverted (255 − value)")
    resample = Image.Resampling.BILINEAR
    if size is not None:
        th, tw = size
        w0, h0 = img.size
        if abs(w0 / h0 - tw / th) > 1e-6:      # pad to the target's aspect with the border colour
            a = np.asarray(img)
            border = _border_mean(torch.tensor(a).movedim(-1, 0) if a.ndim == 3 else torch.tensor(a))
            fill = int(round(border)) if channels == 1 else tuple(
                int(round(v)) for v in np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]]).mean(0))
            nw, nh = max(w0, round(h0 * tw / th)), max(h0, round(w0 * th / tw))
            canvas = Image.new(img.mode, (nw, nh), fill)
            canvas.paste(img, ((nw - w0) // 2, (nh - h0) // 2))
            img = canvas
            steps.append(f"padded to {nw} wide, {nh} high with its border colour (keeps the whole image, as the dataset's "
                         f"centred objects)")
        if img.size != (tw, th):
            img = img.resize((tw, th), resample, reducing_gap=None)
            steps.append(f"resized to {tw} wide, {th} high (bilinear, antialiased)")
    else:
        w0, h0 = img.size
        scale = 1.0
        if min_size is not None:
            scale = max(scale, min_size[0] / h0, min_size[1] / w0)
        if max_side is not None and max(w0, h0) * scale > max_side:
            scale = max_side / max(w0, h0)
            if min_size is not None and min(h0 * scale / min_size[0], w0 * scale / min_size[1]) < 1:
                raise UsageError(f"{path} is {w0} wide and {h0} high: too narrow to hold a {min_size[0]}×{min_size[1]} "
                                 f"window once its longer side is shrunk to {max_side} pixels")
        if scale != 1.0:
            nw, nh = max(1, round(w0 * scale)), max(1, round(h0 * scale))
            img = img.resize((nw, nh), resample, reducing_gap=None)
            steps.append(f"{'enlarged' if scale > 1 else 'shrunk'} to {nw} wide, {nh} high")
    a = np.asarray(img, dtype=np.uint8)
    shown = torch.from_numpy(a.copy())
    shown = shown[None] if shown.dim() == 2 else shown.permute(2, 0, 1).contiguous()     # (C, H, W) uint8
    m = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
    x = (shown.float() / 255.0 - m) / s
    steps.append("normalised with the dataset's mean " + ", ".join(f"{v:.4f}" for v in mean) + " and std "
                 + ", ".join(f"{v:.4f}" for v in std))
    if reference is not None and len(reference):
        ref, mine = _border_mean(reference), _border_mean(shown)
        if abs(ref - mine) > 96:
            fix = "drop --invert" if invert else "pass --invert"
            steps.append(f"note: its border is {'light' if mine > ref else 'dark'} (mean {mine:.0f} of 255) while the "
                         f"dataset's images have {'dark' if ref < mine else 'light'} borders (mean {ref:.0f}): "
                         f"{fix} if the object should be {'light on dark' if ref < mine else 'dark on light'}")
    return LoadedImage(x, shown, steps, str(p))


def class_index(name: str, classes: list[str]) -> int:
    """A class given by name (any case) or number, else a UsageError listing the classes."""
    low = [c.lower() for c in classes]
    if name.lower() in low:
        return low.index(name.lower())
    if name.isdigit() and int(name) < len(classes):
        return int(name)
    raise UsageError(f"no class {name!r}{did_you_mean(name, classes)}; the classes are: {', '.join(classes)} "
                     f"(or a number 0..{len(classes) - 1})")

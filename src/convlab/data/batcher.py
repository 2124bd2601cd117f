"""Batches from a dataset kept whole on the training device, with augmentation as batched tensor ops.

The textbook pipeline (a ``DataLoader`` calling per-sample transforms in Python) spends most of a
small CNN's step in the loader. Here the uint8 dataset sits on the device once; each epoch draws a
permutation, and each batch is gathered, augmented (random crop with padding, horizontal flip,
cutout), resized and normalised with a handful of tensor ops. Everything random comes from one
generator seeded by (seed, epoch), so a run is reproducible, and distributed ranks take disjoint
slices of the same permutation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import UsageError


@dataclass(frozen=True)
class Augment:
    """Batched augmentation settings (training batches only)."""

    crop: int = 0       # pad by this many pixels, then crop back at a random offset (0: off)
    flip: bool = False  # random horizontal flip
    cutout: int = 0     # zero a random square of this side (0: off)

    @classmethod
    def parse(cls, text: str | None, default: "Augment") -> "Augment":
        """'crop=4,flip,cutout=8', 'none', or None for the dataset's default."""
        if text is None:
            return default
        text = text.strip().lower()
        if text in ("none", "off", ""):
            return cls()
        kw: dict = {"crop": 0, "flip": False, "cutout": 0}
        for part in text.split(","):
            key, _, val = part.strip().partition("=")
            if key == "flip":
                kw["flip"] = val in ("", "1", "true", "yes", "on")
            elif key in ("crop", "cutout"):
                try:
                    kw[key] = int(val) if val else (4 if key == "crop" else 8)
                except ValueError:
                    raise UsageError(f"--augment {key}={val!r}: expected an integer number of pixels") from None
                if kw[key] < 0:
                    raise UsageError(f"--augment {key} must be >= 0, got {kw[key]}")
            else:
                raise UsageError(f"--augment: unknown item {key!r}; use crop=N, flip, cutout=N or none")
        return cls(**kw)

    def __str__(self) -> str:
        parts = ([f"crop={self.crop}"] if self.crop else []) + (["flip"] if self.flip else []) + (
            [f"cutout={self.cutout}"] if self.cutout else [])
        return ",".join(parts) or "none"


def default_augment(dataset) -> Augment:
    """Flip where it is label-preserving (not for digits); 4-pixel crops on 32x32 colour images."""
    crop = 4 if dataset.shape[1] >= 32 and dataset.shape[0] == 3 else 0
    return Augment(crop=crop, flip=bool(dataset.flip))


MIRROR_MAX_BYTES = 512 << 20  # datasets up to this size keep a mirrored copy for flips (uint8: bytes = numel)


class Batcher:
    """Yields (images, labels) float batches for one split, from tensors resident on ``device``."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, mean, std, *, batch_size: int, device="cpu",
                 train: bool = False, augment: Augment = Augment(), seed: int = 0, rank: int = 0,
                 world_size: int = 1, drop_last: bool | None = None, channels_last: bool = False,
                 resize: int | None = None, dtype=torch.float32):
        if batch_size < 1:
            raise UsageError(f"batch size must be >= 1, got {batch_size}")
        if x.dtype != torch.uint8 or x.dim() != 4:
            raise UsageError(f"expected uint8 images N×C×H×W, got {x.dtype} {tuple(x.shape)}")
        self.device = torch.device(device)
        self.x = x.to(self.device)
        self.y = y.to(self.device)
        c = x.shape[1]
        self.mean = torch.tensor(mean, device=self.device, dtype=torch.float32).view(1, c, 1, 1)
        self.std = torch.tensor(std, device=self.device, dtype=torch.float32).view(1, c, 1, 1)
        self.batch_size = batch_size
        self.train = train
        self.augment = augment if train else Augment()  # evaluation batches are never augmented
        self.seed = seed
        self.rank, self.world_size = rank, world_size
        self.drop_last = train if drop_last is None else drop_last
        self.channels_last = channels_last
        self.resize = resize
        self.dtype = dtype
        self.epoch = 0
        # flip without crop: keep the mirrored images too, so a batch is one index_select from [x; flipped x]
        # instead of a gather of computed pixel indices (3.2x the batches per second: bench/data_speed.py)
        self.x_and_mirror = None
        if self.augment.flip and not self.augment.crop and self.x.numel() <= MIRROR_MAX_BYTES:
            self.x_and_mirror = torch.cat([self.x, self.x.flip(-1)])

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def indices(self) -> torch.Tensor:
        """This rank's sample indices for the current epoch."""
        n = self.x.shape[0]
        if self.train:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(n, generator=g)
        else:
            order = torch.arange(n)
        if self.world_size > 1:
            if self.train:  # rank r takes the r-th slice of every global batch: the same batches as one process
                b, w = self.batch_size, self.world_size
                steps = n // (b * w)
                order = order[: steps * b * w].view(steps, w, b)[:, self.rank].reshape(-1)
            else:
                per = math.ceil(n / self.world_size)
                order = order[self.rank * per: (self.rank + 1) * per]
        return order.to(self.device)

    def __len__(self) -> int:
        n = self.x.shape[0]
        if self.train and self.world_size > 1:
            return n // (self.batch_size * self.world_size)
        n = math.ceil(n / self.world_size) if self.world_size > 1 else n
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self):
        idx = self.indices()
        g = torch.Generator(device=self.device).manual_seed(self.seed * 7_919 + self.epoch * 31 + self.rank + 1)
        for i in range(len(self)):
            b = idx[i * self.batch_size: (i + 1) * self.batch_size]
            if len(b) == 0:
                break
            yield self.make_batch(b, g), self.y.index_select(0, b)

    def make_batch(self, b: torch.Tensor, g: torch.Generator | None = None) -> torch.Tensor:
        a = self.augment
        if self.x_and_mirror is not None:  # the same random draw as random_crop_flip's without a crop
            mirrored = torch.rand(len(b), generator=g, device=self.device) < 0.5
            x = self.x_and_mirror.index_select(0, b + mirrored * len(self.x))
        else:
            x = self.x.index_select(0, b)  # (B, C, H, W) uint8; cheaper than advanced indexing x[b] on CPU
            if a.crop or a.flip:
                x = random_crop_flip(x, a.crop, a.flip, g)
        x = x.to(torch.float32).div_(255.0)
        if a.cutout:
            x = cutout(x, a.cutout, g, fill=self.mean)
        x = (x - self.mean) / self.std
        if self.resize and (x.shape[-2], x.shape[-1]) != (self.resize, self.resize):
            x = F.interpolate(x, size=(self.resize, self.resize), mode="bilinear", align_corners=False)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x.to(self.dtype) if self.dtype != torch.float32 else x


def random_crop_flip(x: torch.Tensor, pad: int, flip: bool, g: torch.Generator | None) -> torch.Tensor:
    """Zero-pad each image by ``pad``, crop it back at a random offset and, with ``flip``, mirror a
    random half left-right — all in one gather: (B, C, H, W) -> (B, C, H, W)."""
    bsz, c, h, w = x.shape
    wp = w + 2 * pad
    xp = F.pad(x, (pad, pad, pad, pad)) if pad else x
    dev = x.device
    dy = torch.randint(0, 2 * pad + 1, (bsz,), generator=g, device=dev) if pad else torch.zeros(bsz, dtype=torch.long, device=dev)
    dx = torch.randint(0, 2 * pad + 1, (bsz,), generator=g, device=dev) if pad else torch.zeros(bsz, dtype=torch.long, device=dev)
    cols = torch.arange(w, device=dev)[None].expand(bsz, w)  # (B, W)
    if flip:
        mirrored = torch.rand(bsz, generator=g, device=dev) < 0.5
        cols = torch.where(mirrored[:, None], (w - 1) - cols, cols)
    rows = torch.arange(h, device=dev)
    # flat index into each padded (H+2p)×(W+2p) image: (B, H, W)
    index = (dy[:, None, None] + rows[None, :, None]) * wp + (dx[:, None] + cols)[:, None, :]
    index = index.view(bsz, 1, h * w).expand(bsz, c, h * w)
    return xp.reshape(bsz, c, -1).gather(2, index).view(bsz, c, h, w)


def cutout(x: torch.Tensor, size: int, g: torch.Generator | None, fill=0.0) -> torch.Tensor:
    """Set a random size×size square of each image (clipped at the edges) to ``fill``."""
    bsz, _, h, w = x.shape
    cy = torch.randint(0, h, (bsz,), generator=g, device=x.device)
    cx = torch.randint(0, w, (bsz,), generator=g, device=x.device)
    ys = torch.arange(h, device=x.device)[None, :, None]
    xs = torch.arange(w, device=x.device)[None, None, :]
    half = size // 2
    m = ((ys - cy[:, None, None]).abs() <= half - (1 - size % 2) * (ys < cy[:, None, None])) & \
        ((xs - cx[:, None, None]).abs() <= half - (1 - size % 2) * (xs < cx[:, None, None]))
    m = m[:, None]
    fill_t = torch.as_tensor(fill, dtype=x.dtype, device=x.device)
    return torch.where(m, fill_t.expand_as(x) if fill_t.dim() else fill_t, x)

"""Where a run computes: the one "auto" device rule, the device itself, and the per-device settings.

``--device auto`` means CUDA, then Apple's MPS, then the CPU. That rule lives in :func:`device_kind`
alone: the distributed backend (NCCL on CUDA, gloo otherwise) and :func:`pick_device` both read it,
so the two can never disagree about which device "auto" is.
"""

from __future__ import annotations

import sys

import torch

from ..errors import UsageError


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def device_kind(kind: str) -> str:
    """The device type a ``--device`` value names: itself, or for "auto" CUDA, then MPS, then CPU."""
    if kind != "auto":
        return kind
    if torch.cuda.is_available():
        return "cuda"
    if _mps_available():
        return "mps"
    return "cpu"


def pick_device(kind: str, local_rank: int = 0) -> torch.device:
    """The torch device for ``--device kind`` (auto, cpu, cuda, mps); under torchrun each process takes
    the GPU of its ``local_rank``. A device that is not there is a UsageError that names the way out."""
    kind = device_kind(kind)
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise UsageError("--device cuda: no CUDA GPU is available here; use --device cpu or auto")
        return torch.device("cuda", local_rank)
    if kind == "mps" and not _mps_available():
        raise UsageError("--device mps: Apple's MPS is not available here; use --device cpu or auto")
    return torch.device(kind)


def configure(device: torch.device) -> None:
    """The settings a training run makes for its device: the CPU allocator tuning below; on CUDA
    cuDNN's autotuner (the shapes are fixed, so it may pick its fastest kernels) and TF32 for fp32
    matmuls."""
    if device.type == "cpu":
        tune_cpu_allocator()
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True


def tune_cpu_allocator() -> bool:
    """Keep freed blocks up to 32 MiB in the C heap instead of returning them to the OS (glibc only).

    glibc hands large blocks back to the kernel on free, so every training step pays page faults to
    touch fresh memory for its activations and gradients. Keeping them cut a LeNet run's minor page
    faults from 208k to 66k here and its CPU step by 3-7% (bench/train_speed.py times the step with
    and without, each in its own process; the machine's own drift is of the same size). It changes
    this process's allocator for the rest of its life: memory freed after training stays reserved by
    the process. Returns whether the setting took effect; a no-op off glibc.
    """
    import ctypes
    import platform

    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # mallopt parameter numbers from <malloc.h>
        return bool(libc.mallopt(m_trim_threshold, 1 << 30)) and bool(libc.mallopt(m_mmap_threshold, 32 << 20))
    except (OSError, AttributeError):
        return False

"""Max pooling with a faster CPU path for the common 2×2, stride-2 case on few channels.

PyTorch's CPU max-pool kernel for channels-last tensors vectorises over channels; with fewer channels
than a vector holds (LeNet's 6 after its first conv) it falls back to scalar code and costs a fifth
of the training step. The 2×2 window is two pairwise maxima instead: first across the
two columns of each window row, then across the two rows, each an elementwise ``maximum`` over
strided views that vectorises along the whole row. The backward pass routes each gradient to the
element PyTorch's kernel would pick (the first maximum in row-major window order, so ties resolve the
same way) through two saved 0/1 masks. Outputs and (finite) gradients equal ``F.max_pool2d``'s
exactly (tests/test_pool.py); bench/pool_speed.py and bench/train_speed.py measure the effect. An
infinite incoming gradient spreads as NaN over its window here (0 × inf), where PyTorch's kernel
keeps it on the maximum; a training step with such a gradient is lost either way.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..arith import pair

# The fast path is taken for channels-last CPU maps with fewer channels than this and at least
# FAST_MIN_PIXELS pixels; at 8 channels and above PyTorch's own kernel vectorises over channels and is
# faster, and on small maps the two are even (bench/pool_speed.py).
FAST_MAX_CHANNELS = 8
FAST_MIN_PIXELS = 256


def _windows(x: torch.Tensor, ho: int, wo: int) -> torch.Tensor:
    """[N, C, H, W] → a view [N, Ho, 2, Wo, 2, C] of its 2×2 windows (odd last rows/columns dropped)."""
    return x[:, :, : 2 * ho, : 2 * wo].permute(0, 2, 3, 1).unflatten(1, (ho, 2)).unflatten(3, (wo, 2))


def _pairwise_max(x: torch.Tensor, masks: bool):
    """The 2×2 maxima as [N, C, Ho, Wo] (channels-last), and with ``masks`` the two 0/1 tensors that
    say which column and which row of each window won."""
    n, c, h, w = x.shape
    v = _windows(x, h // 2, w // 2)
    left, right = v[:, :, :, :, 0], v[:, :, :, :, 1]                  # [N, Ho, 2, Wo, C]
    rows = torch.maximum(left, right)
    top, bottom = rows[:, :, 0], rows[:, :, 1]                        # [N, Ho, Wo, C]
    out = torch.maximum(top, bottom).permute(0, 3, 1, 2)
    if not masks:
        return out, None, None
    col = torch.gt(right, left, out=x.new_empty(left.shape))          # 1 where the right column wins
    row = torch.gt(bottom, top, out=x.new_empty(top.shape))           # 1 where the bottom row wins
    return out, col, row


class _MaxPool2x2(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        out, col, row = _pairwise_max(x, masks=True)
        ctx.save_for_backward(col, row)
        ctx.in_shape = x.shape
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        col, row = ctx.saved_tensors
        n, c, h, w = ctx.in_shape
        ho, wo = h // 2, w // 2
        g = grad.permute(0, 2, 3, 1)                                  # [N, Ho, Wo, C]
        g_rows = grad.new_empty((n, ho, 2, wo, c))
        torch.mul(g, row, out=g_rows[:, :, 1])
        torch.sub(g, g_rows[:, :, 1], out=g_rows[:, :, 0])
        gx = torch.empty((n, c, h, w), dtype=grad.dtype, device=grad.device, memory_format=torch.channels_last)
        if h % 2 or w % 2:
            gx.zero_()  # the dropped last row/column gets no gradient
        v = _windows(gx, ho, wo)
        torch.mul(g_rows, col, out=v[:, :, :, :, 1])
        torch.sub(g_rows, v[:, :, :, :, 1], out=v[:, :, :, :, 0])
        return gx


def fast_path(x: torch.Tensor) -> bool:
    """Whether :func:`max_pool2x2` takes the pairwise-maximum path for this input (never while
    ``torch.jit.trace`` records: a traced model keeps PyTorch's op)."""
    return (not torch.jit.is_tracing() and x.dim() == 4 and x.device.type == "cpu"
            and x.dtype in (torch.float32, torch.float64)
            and x.shape[1] < FAST_MAX_CHANNELS and x.shape[2] * x.shape[3] >= FAST_MIN_PIXELS
            and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous())


def max_pool2x2(x: torch.Tensor) -> torch.Tensor:
    """``F.max_pool2d(x, 2)``, the same values and gradients, faster on few-channel CPU tensors."""
    if not fast_path(x):
        return F.max_pool2d(x, 2)
    if torch.is_grad_enabled() and x.requires_grad:
        return _MaxPool2x2.apply(x)
    return _pairwise_max(x, masks=False)[0]  # evaluation: no gradient, so no masks to keep


class MaxPool2d(nn.MaxPool2d):
    """``nn.MaxPool2d`` (same arguments, state and printout) that takes :func:`max_pool2x2`'s path
    when the pool is 2×2 with stride 2 and no padding. TorchScript, ``torch.jit.trace`` and
    ``torch.fx`` see PyTorch's op."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # TorchScript does not compile this block; torch.fx traces with proxies, which are not tensors
        if not torch.jit.is_scripting() and isinstance(x, torch.Tensor):
            if (not self.return_indices and not self.ceil_mode and pair(self.kernel_size) == (2, 2)
                    and pair(self.stride) == (2, 2) and pair(self.padding) == (0, 0)
                    and pair(self.dilation) == (1, 1) and fast_path(x)):
                return max_pool2x2(x)
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation, ceil_mode=self.ceil_mode,
                            return_indices=self.return_indices)

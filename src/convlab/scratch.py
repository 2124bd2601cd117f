"""Convolution from first principles: the operations of d2l chapter 7 and of the course notes' Keras
chapter (batch norm, separable convs), written plainly with tensor indexing and arithmetic — no
``F.conv2d``, no ``F.unfold``.

Most come twice: the loop as the notes write it (to read), and a vectorised form (to use). Both agree
with PyTorch to 1e-5 in the tests.

Shape arithmetic used throughout (one spatial dimension; ``convlab.arith.conv_out`` computes it):

    out = floor((in + 2·padding − dilation·(kernel − 1) − 1) / stride) + 1
"""

from __future__ import annotations

import torch
from torch import nn

from . import arith
from .arith import pair

__all__ = ["corr2d", "Conv2D", "corr2d_multi_in", "corr2d_multi_in_out", "corr2d_1x1", "conv2d_loop", "conv2d",
           "im2col", "pool2d", "pool2d_nchw", "batch_norm", "separable_params", "learn_kernel"]


# ---------------------------------------------------------------------------------------------
# d2l 7.2 – 7.4, as loops


def corr2d(X: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """2-D cross-correlation of one channel (d2l 7.2.1): (H, W) ⋆ (h, w) -> (H − h + 1, W − w + 1).

    >>> corr2d(torch.tensor([[0., 1, 2], [3, 4, 5], [6, 7, 8]]), torch.tensor([[0., 1], [2, 3]]))
    tensor([[19., 25.],
            [37., 43.]])
    """
    h, w = K.shape
    Y = torch.zeros((X.shape[0] - h + 1, X.shape[1] - w + 1), dtype=torch.result_type(X, K))
    for i in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            Y[i, j] = (X[i:i + h, j:j + w] * K).sum()
    return Y


class Conv2D(nn.Module):
    """d2l 7.2.2's convolutional layer, as the notes write it: a learnable kernel and one scalar bias;
    forward is :func:`corr2d` plus the bias. One channel in, one out, stride 1, no padding:
    (H, W) -> (H − h + 1, W − w + 1).

    The kernel starts uniform in [0, 1) (``torch.rand``, as in d2l); pass a ``generator`` for a
    reproducible start. The bias starts at zero.

    >>> layer = Conv2D((1, 2), generator=torch.Generator().manual_seed(0))
    >>> layer(torch.ones(6, 8)).shape
    torch.Size([6, 7])
    """

    def __init__(self, kernel_size, generator: torch.Generator | None = None):
        super().__init__()
        self.weight = nn.Parameter(torch.rand(pair(kernel_size), generator=generator))
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return corr2d(x, self.weight) + self.bias


def corr2d_multi_in(X: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Several input channels (d2l 7.4.1): correlate each channel with its kernel and add:
    (C, H, W) ⋆ (C, h, w) -> (H − h + 1, W − w + 1)."""
    return sum(corr2d(x, k) for x, k in zip(X, K))


def corr2d_multi_in_out(X: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Several output channels (d2l 7.4.2): one multi-input kernel per output channel:
    (C, H, W) ⋆ (O, C, h, w) -> (O, H − h + 1, W − w + 1)."""
    return torch.stack([corr2d_multi_in(X, k) for k in K], 0)


def corr2d_1x1(X: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """A 1x1 convolution is a matrix product over channels (d2l 7.4.3):
    (C, H, W) with (O, C, 1, 1) -> (O, C) @ (C, H·W) -> (O, H, W)."""
    c, h, w = X.shape
    o = K.shape[0]
    return (K.reshape(o, c) @ X.reshape(c, h * w)).reshape(o, h, w)


def conv2d_loop(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, stride=1, padding=0,
                dilation=1, groups: int = 1) -> torch.Tensor:
    """Batched convolution as nested loops over outputs: (N, C, H, W) ⋆ (O, C/g, kh, kw) -> (N, O, Ho, Wo).
    Slow; it is here to be read next to :func:`conv2d`."""
    (sh, sw), (ph, pw), (dh, dw) = pair(stride), pair(padding), pair(dilation)
    n, c, h, w = x.shape
    o, cg, kh, kw = weight.shape
    ho, wo = arith.conv_out((h, w), (kh, kw), (sh, sw), (ph, pw), (dh, dw))
    xp = torch.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=x.dtype)
    xp[:, :, ph:ph + h, pw:pw + w] = x
    y = torch.zeros((n, o, ho, wo), dtype=x.dtype)
    og = o // groups
    for oc in range(o):
        g = oc // og
        xs = xp[:, g * cg:(g + 1) * cg]
        for i in range(ho):
            for j in range(wo):
                window = xs[:, :, i * sh: i * sh + dh * (kh - 1) + 1: dh, j * sw: j * sw + dw * (kw - 1) + 1: dw]
                y[:, oc, i, j] = (window * weight[oc]).sum(dim=(1, 2, 3))
    if bias is not None:
        y += bias.view(1, -1, 1, 1)
    return y


# ---------------------------------------------------------------------------------------------
# vectorised: im2col + one matrix product per group


def im2col(x: torch.Tensor, kernel, stride=1, padding=0, dilation=1, pad_value: float = 0.0) -> torch.Tensor:
    """Every k_h×k_w window of a padded (N, C, H, W) tensor, as a view (N, C, Ho, Wo, kh, kw) built
    with strides (no copy until it is used)."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = pair(kernel), pair(stride), pair(padding), pair(dilation)
    n, c, h, w = x.shape
    ho, wo = arith.conv_out((h, w), (kh, kw), (sh, sw), (ph, pw), (dh, dw))
    if ph or pw:
        xp = x.new_full((n, c, h + 2 * ph, w + 2 * pw), pad_value)
        xp[:, :, ph:ph + h, pw:pw + w] = x
    else:
        xp = x.contiguous()
    s_n, s_c, s_h, s_w = xp.stride()
    return xp.as_strided((n, c, ho, wo, kh, kw), (s_n, s_c, s_h * sh, s_w * sw, s_h * dh, s_w * dw))


def conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, stride=1, padding=0,
           dilation=1, groups: int = 1) -> torch.Tensor:
    """Convolution (cross-correlation, as in PyTorch) by im2col and a matrix product:
    (N, C, H, W) ⋆ (O, C/g, kh, kw) -> (N, O, Ho, Wo); depthwise when groups = C.

    Each output is the dot product of a window (C/g·kh·kw numbers) with a filter; gathering all
    windows into a matrix turns the whole layer into one (O/g × C/g·kh·kw) @ (C/g·kh·kw × Ho·Wo)
    product per group and image.
    """
    n, c, _, _ = x.shape
    o, cg, kh, kw = weight.shape
    if c != cg * groups:
        from .errors import ShapeError

        raise ShapeError(f"conv2d: weight {list(weight.shape)} with groups={groups} expects {cg * groups} input "
                         f"channels, got {c}")
    cols = im2col(x, (kh, kw), stride, padding, dilation)                  # (N, C, Ho, Wo, kh, kw)
    _, _, ho, wo, _, _ = cols.shape
    cols = cols.reshape(n, groups, cg, ho, wo, kh, kw).permute(0, 1, 2, 5, 6, 3, 4)
    cols = cols.reshape(n, groups, cg * kh * kw, ho * wo)                  # (N, g, C/g·kh·kw, Ho·Wo)
    w = weight.reshape(groups, o // groups, cg * kh * kw)                  # (g, O/g, C/g·kh·kw)
    y = torch.matmul(w.unsqueeze(0), cols).reshape(n, o, ho, wo)           # (N, O, Ho, Wo)
    if bias is not None:
        y = y + bias.view(1, -1, 1, 1)
    return y


# ---------------------------------------------------------------------------------------------
# pooling (d2l 7.5)


def pool2d(X: torch.Tensor, pool_size, mode: str = "max") -> torch.Tensor:
    """d2l 7.5.1's loop: stride 1, no padding, one channel: (H, W) -> (H − p_h + 1, W − p_w + 1)."""
    p_h, p_w = pair(pool_size)
    Y = torch.zeros((X.shape[0] - p_h + 1, X.shape[1] - p_w + 1), dtype=X.dtype)
    for i in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            window = X[i: i + p_h, j: j + p_w]
            Y[i, j] = window.max() if mode == "max" else window.mean()
    return Y


def pool2d_nchw(x: torch.Tensor, kernel, stride=None, padding=0, mode: str = "max") -> torch.Tensor:
    """Max or average pooling of (N, C, H, W) with stride (default: the kernel) and padding, as
    ``nn.MaxPool2d`` / ``nn.AvgPool2d`` (padding counts as -inf for max and as zeros in the average)."""
    if mode not in ("max", "avg"):
        raise ValueError(f"mode must be 'max' or 'avg', got {mode!r}")
    kernel = pair(kernel)
    stride = kernel if stride is None else pair(stride)
    arith.pool_out(tuple(x.shape[2:]), kernel, stride, pair(padding))  # PyTorch's limits, explained on failure
    fill = float("-inf") if mode == "max" else 0.0
    cols = im2col(x, kernel, stride, padding, 1, pad_value=fill)          # (N, C, Ho, Wo, kh, kw)
    return cols.amax(dim=(-2, -1)) if mode == "max" else cols.mean(dim=(-2, -1))


# ---------------------------------------------------------------------------------------------
# batch normalisation (the Keras notes)


def batch_norm(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, running_mean: torch.Tensor,
               running_var: torch.Tensor, training: bool, momentum: float = 0.1, eps: float = 1e-5):
    """BatchNorm over the channel dimension of (N, C, H, W) or (N, C).

    Training: normalise with the batch's mean and (biased) variance, and move the running
    statistics towards the batch's, using the unbiased variance as PyTorch does:
    running = (1 − momentum)·running + momentum·batch. Evaluation: use the running statistics.
    Per channel that is 2 trainable numbers (γ, β) and 2 non-trainable ones (the running mean and
    variance): BN over 32 channels has 64 + 64 = 128, as the Keras notes count it.

    Returns (y, new_running_mean, new_running_var).
    """
    dims = (0,) if x.dim() == 2 else (0, 2, 3)
    shape = (1, -1) if x.dim() == 2 else (1, -1, 1, 1)
    if training:
        mean = x.mean(dim=dims)
        var = x.var(dim=dims, unbiased=False)
        m = x.numel() // x.shape[1]
        new_mean = (1 - momentum) * running_mean + momentum * mean
        new_var = (1 - momentum) * running_var + momentum * var * m / max(m - 1, 1)
    else:
        mean, var = running_mean, running_var
        new_mean, new_var = running_mean, running_var
    y = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + eps)
    return gamma.view(shape) * y + beta.view(shape), new_mean, new_var


def separable_params(c_in: int, c_out: int, k: int, depthwise_bias: bool = False, pointwise_bias: bool = True) -> dict:
    """Parameter count of a depthwise-separable conv, part by part (the Keras notes' two exercises).

    >>> separable_params(32, 64, 3)["total"]          # Keras SeparableConv2D: no depthwise bias
    2400
    >>> separable_params(3, 2, 3, depthwise_bias=True)["total"]
    38
    """
    dw = c_in * k * k
    dwb = c_in if depthwise_bias else 0
    pw = c_in * c_out
    pwb = c_out if pointwise_bias else 0
    return {"depthwise": dw, "depthwise_bias": dwb, "pointwise": pw, "pointwise_bias": pwb,
            "total": dw + dwb + pw + pwb, "regular_conv": c_in * c_out * k * k + (c_out if pointwise_bias else 0)}


def learn_kernel(X: torch.Tensor, Y: torch.Tensor, kernel_shape=(1, 2), lr: float = 3e-2, steps: int = 10,
                 seed: int = 0, init=None) -> tuple[torch.Tensor, list[float]]:
    """d2l 7.2.4: learn a kernel from an image X and its edge map Y by gradient descent on the squared
    error, with this module's :func:`conv2d`. Returns the kernel and, for each step, the loss computed
    before that step's update (what d2l prints).

    The start is ``init`` when given (a kernel of ``kernel_shape``), else uniform in [0, 1) from
    ``seed``. The method is d2l's; only the start is random, and the losses depend on it.
    """
    if init is not None:
        K = torch.as_tensor(init, dtype=torch.float32).reshape(1, 1, *kernel_shape).clone().requires_grad_(True)
    else:
        g = torch.Generator().manual_seed(seed)
        K = torch.rand((1, 1, *kernel_shape), generator=g, requires_grad=True)
    x = X.reshape(1, 1, *X.shape)
    y = Y.reshape(1, 1, *Y.shape)
    losses = []
    for _ in range(steps):
        loss = ((conv2d(x, K) - y) ** 2).sum()
        loss.backward()
        with torch.no_grad():
            K -= lr * K.grad
            K.grad.zero_()
        losses.append(float(loss.detach()))
    return K.detach().reshape(kernel_shape), losses

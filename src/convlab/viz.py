"""Plots: training curves, runs compared, confusion matrices, learned filters and feature maps (matplotlib)."""

from __future__ import annotations

from pathlib import Path


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path, tight: bool = True) -> Path:
    """Lay out (unless a colour bar placed by hand says not to), write as PNG, and free the figure."""
    if tight:
        fig.tight_layout()
    fig.savefig(path, dpi=110)
    _plt().close(fig)
    return Path(path)


def _style(ax, ylabel: str, title: str) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.margins(y=0.12)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)


def plot_curves(rows: list[dict], path: Path, title: str = "") -> Path:
    """Loss and accuracy per epoch, train and test, side by side."""
    plt = _plt()
    ep = [r["epoch"] for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    a.plot(ep, [r["train_loss"] for r in rows], "o-", label="train")
    te = [(r["epoch"], r["test_loss"], r["test_acc"]) for r in rows if r.get("test_acc") is not None]
    if te:
        a.plot([t[0] for t in te], [t[1] for t in te], "s-", label="test")
    _style(a, "cross-entropy", "loss")
    b.plot(ep, [100 * r["train_acc"] for r in rows], "o-", label="train")
    if te:
        b.plot([t[0] for t in te], [100 * t[2] for t in te], "s-", label="test")
        best = max(te, key=lambda t: t[2])
        b.annotate(f"best {100 * best[2]:.2f}%", (best[0], 100 * best[2]), textcoords="offset points",
                   xytext=(0, -16), ha="right")
    _style(b, "accuracy (%)", "accuracy")
    if title:
        fig.suptitle(title)
    return save(fig, path)


def plot_compare(curves: list[tuple[str, list[dict]]], path: Path) -> Path:
    """Several runs on shared axes: train loss (left) and test accuracy (right), one line per run.
    ``curves`` holds a (label, metric rows per epoch) pair per run."""
    plt = _plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    for label, ms in curves:
        a.plot([m["epoch"] for m in ms], [m["train_loss"] for m in ms], "o-", label=label)
        ev = [m for m in ms if m.get("test_acc") is not None]
        b.plot([m["epoch"] for m in ev], [100 * m["test_acc"] for m in ev], "s-", label=label)
    for ax, ylabel, title in ((a, "cross-entropy", "train loss"), (b, "accuracy (%)", "test accuracy")):
        _style(ax, ylabel, title)
    return save(fig, path)


def plot_confusion(matrix, classes: list[str], path: Path, title: str = "") -> Path:
    """Confusion matrix with row-normalised colours and counts in the cells."""
    import numpy as np

    plt = _plt()
    m = np.asarray(matrix)
    norm = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    n = len(classes)
    size = max(5, 0.55 * n + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), classes, rotation=45, ha="right")
    ax.set_yticks(range(n), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 20:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, str(int(m[i, j])), ha="center", va="center", fontsize=8,
                        color="white" if norm[i, j] > 0.5 else "black")
    if title:
        ax.set_title(title)
    return save(fig, path)


# ---------------------------------------------------------------------------------------------
# what a trained CNN learned: its filters, and the maps its layers compute for one image


def conv_layers(model) -> dict:
    """The model's Conv2d modules by name, in forward order of definition."""
    import torch.nn as nn

    return {name: m for name, m in model.named_modules() if isinstance(m, nn.Conv2d)}


def _pick(layers: dict, name: str | None, what: str):
    from .errors import UsageError, did_you_mean

    if not layers:
        raise UsageError(f"the model has no {what} to show")
    if name is None:
        return next(iter(layers.items()))
    if name not in layers:
        raise UsageError(f"no {what} named {name!r}{did_you_mean(name, layers)}; the model's are: "
                         f"{', '.join(layers)}")
    return name, layers[name]


def filter_tiles(weight, max_tiles: int = 64):
    """Kernels as images: [T, kh, kw, 3] in [0, 1] for RGB-input filters (each scaled on its own), else
    [T, kh, kw] signed values, one per (output, input) channel pair, output-major, at most ``max_tiles``."""
    w = weight.detach().float().cpu()
    if w.shape[1] == 3:
        t = w[:max_tiles].permute(0, 2, 3, 1)
        lo = t.amin(dim=(1, 2, 3), keepdim=True)
        hi = t.amax(dim=(1, 2, 3), keepdim=True)
        return ((t - lo) / (hi - lo).clamp(min=1e-12)).numpy()
    return w.reshape(-1, w.shape[2], w.shape[3])[:max_tiles].numpy()


def plot_filters(model, path, layer: str | None = None, title: str = "", max_tiles: int = 64) -> Path:
    """A grid of one conv layer's kernels (the first conv by default). Single-channel kernels use a
    diverging colour map centred on zero (red positive, blue negative, one scale for the grid), so
    edge and blob detectors read at a glance; RGB-input kernels are shown in colour."""
    import math

    import numpy as np

    name, conv = _pick(conv_layers(model), layer, "conv layer")
    tiles = filter_tiles(conv.weight, max_tiles)
    o, i = conv.weight.shape[:2]
    rgb = tiles.ndim == 4
    cols = min(len(tiles), i if 1 < i <= 16 and not rgb else 8)
    rows = math.ceil(len(tiles) / cols)
    plt = _plt()
    fig, axes = plt.subplots(rows, cols, figsize=(1.1 * cols + 0.8, 1.1 * rows + 0.9), squeeze=False)
    vmax = float(np.abs(tiles).max()) or 1.0
    im = None
    for k, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if k >= len(tiles):
            continue
        if rgb:
            ax.imshow(tiles[k], interpolation="nearest")
        else:
            im = ax.imshow(tiles[k], cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest")
        ax.set_title(str(k) if rgb or i == 1 else f"{k // i}.{k % i}", fontsize=7)
    total = o if rgb else o * i
    shown = f"{len(tiles)} of {total}" if len(tiles) < total else f"{total}"
    fig.suptitle(title or f"{name}: {shown} kernels {conv.weight.shape[2]}×{conv.weight.shape[3]}"
                 + ("" if rgb or i == 1 else " (output.input channel)"))
    if im is not None:
        fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.6)
    return save(fig, path, tight=im is None)


def check_layers(model, names) -> None:
    """A UsageError, with the closest names, for any of ``names`` that is not a module of the model."""
    from .errors import UsageError, did_you_mean

    modules = [m for m, _ in model.named_modules() if m]
    for n in names:
        if n not in modules:
            raise UsageError(f"no layer named {n!r}{did_you_mean(n, modules)}")


def feature_maps(model, image, layers: list[str] | None = None) -> dict:
    """The output of each named module (every conv layer by default) for one image [C, H, W], in
    eval mode and without gradients: {name: tensor [C', H', W']}."""
    import torch

    from .errors import UsageError

    modules = dict(model.named_modules())
    names = layers or list(conv_layers(model))
    if not names:
        raise UsageError("the model has no conv layers; name the layers whose outputs to show (--layer NAME)")
    check_layers(model, names)
    out, hooks = {}, []
    for n in names:
        hooks.append(modules[n].register_forward_hook(lambda m, a, y, n=n: out.__setitem__(n, y.detach()[0].cpu())))
    was = model.training
    try:
        model.eval()
        param = next(model.parameters(), None)
        x = image.unsqueeze(0)
        if param is not None:
            x = x.to(param.device, param.dtype)
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
        model.train(was)
    return out


def plot_feature_maps(model, image, path, layers: list[str] | None = None, max_channels: int = 16,
                      title: str = "", shown_image=None) -> Path:
    """The input image, then one row per layer with its first ``max_channels`` maps (each map on its
    own grey scale, as what matters is where a channel fires)."""
    maps = feature_maps(model, image, layers)
    cols = min(max_channels, max((m.shape[0] for m in maps.values() if m.dim() == 3), default=1))
    plt = _plt()
    fig, axes = plt.subplots(len(maps) + 1, cols, figsize=(1.15 * cols + 0.6, 1.3 * (len(maps) + 1) + 0.6),
                             squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    shown = (shown_image if shown_image is not None else image).detach().float().cpu()
    if shown.shape[0] == 3:
        lo, hi = shown.min(), shown.max()
        axes[0, 0].imshow(((shown - lo) / (hi - lo).clamp(min=1e-12)).permute(1, 2, 0).numpy())
    else:
        axes[0, 0].imshow(shown[0].numpy(), cmap="gray")
    axes[0, 0].set_title(f"input {'×'.join(map(str, shown.shape))}", fontsize=7, loc="left")
    for r, (name, m) in enumerate(maps.items(), start=1):
        if m.dim() != 3:
            axes[r, 0].text(0, 0.5, f"{name}: {list(m.shape)} (not a map)", fontsize=7)
            continue
        for c in range(min(cols, m.shape[0])):
            axes[r, c].imshow(m[c].numpy(), cmap="gray", interpolation="nearest")
        axes[r, 0].set_title(f"{name} {m.shape[0]}×{m.shape[1]}×{m.shape[2]}", fontsize=7, loc="left")
    if title:
        fig.suptitle(title)
    return save(fig, path)

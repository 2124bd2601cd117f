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
    from .fileio import save_figure

    try:
        return save_figure(fig, path, dpi=110)
    finally:
        _plt().close(fig)


def _style(ax, ylabel: str, title: str) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    lo, hi = ax.get_xlim()
    if hi - lo < 2:  # one or two epochs: whole epochs only, not 0.95 ... 1.05
        mid = round((lo + hi) / 2)
        ax.set_xlim(min(lo, mid - 1), max(hi, mid + 1))
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


COMPARE_METRICS = ("train_error", "test_error", "loss")


def plot_compare(curves: list, path: Path, metric: str | None = None) -> Path:
    """Several runs on shared axes, one line per run, the legend outside the axes. ``curves`` holds a
    (label, metric rows per epoch[, steps.jsonl rows]) tuple per run. Without ``metric``: train loss
    (left) and test accuracy (right) per epoch. With ``metric`` (train_error | test_error | loss): that
    one, per iteration where every run logged its steps (training error and loss thin, per logged
    step; test error at the epoch ends), else per epoch."""
    plt = _plt()
    curves = [(c[0], c[1], c[2] if len(c) > 2 else []) for c in curves]
    if metric is None:
        fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4.4))
        for label, ms, _ in curves:
            a.plot([m["epoch"] for m in ms], [m["train_loss"] for m in ms], "o-", label=label)
            ev = [m for m in ms if m.get("test_acc") is not None]
            b.plot([m["epoch"] for m in ev], [100 * m["test_acc"] for m in ev], "s-", label=label)
        for ax, ylabel, title in ((a, "cross-entropy", "train loss"), (b, "accuracy (%)", "test accuracy")):
            _style(ax, ylabel, title)
            ax.get_legend().remove()
        handles, labels = a.get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 3), fontsize=8, frameon=False)
        fig.tight_layout(rect=(0, 0.06 + 0.04 * ((len(labels) - 1) // 3), 1, 1))
        return save(fig, path, tight=False)
    per_step = all(steps for _, _, steps in curves)
    fig, ax = plt.subplots(figsize=(8, 4.2))
    for label, ms, steps in curves:
        # the step at each epoch's end, from the steps log: where an epoch's test error is drawn
        end_of = {}
        for r in steps:
            end_of[r["epoch"]] = r["step"]
        if metric == "test_error":
            ev = [m for m in ms if m.get("test_acc") is not None]
            xs = [end_of.get(m["epoch"], m["epoch"]) if per_step else m["epoch"] for m in ev]
            ax.plot(xs, [100 * (1 - m["test_acc"]) for m in ev], "o-", lw=2.2, label=label)
        elif per_step:
            key = "train_error" if metric == "train_error" else "train_loss"
            ax.plot([r["step"] for r in steps], [(100 if key == "train_error" else 1) * r[key] for r in steps], "-",
                    lw=0.9, label=label)
        else:
            ax.plot([m["epoch"] for m in ms],
                    [100 * (1 - m["train_acc"]) if metric == "train_error" else m["train_loss"] for m in ms], "o-",
                    label=label)
    ax.set_xlabel("iteration" if per_step else "epoch")
    ax.set_ylabel({"train_error": "training error (%)", "test_error": "test error (%)", "loss": "train loss"}[metric])
    ax.set_title({"train_error": "training error", "test_error": "test error", "loss": "training loss"}[metric])
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
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
                      title: str = "", shown_image=None, maps: dict | None = None) -> Path:
    """The input image, then one row per layer with its first ``max_channels`` maps (each map on its
    own grey scale, as what matters is where a channel fires). ``maps`` ({name: (C, H, W)}, e.g. the
    activation outputs of :func:`convlab.inspect.activation_maps`) replaces the layers' outputs. A map
    that is zero everywhere (a blank channel) is framed in red and titled "blank"."""
    maps = maps if maps is not None else feature_maps(model, image, layers)
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
        blank = [c for c in range(m.shape[0]) if not bool(m[c].any())]
        for c in range(min(cols, m.shape[0])):
            axes[r, c].imshow(m[c].numpy(), cmap="gray", interpolation="nearest", vmin=0 if c in blank else None)
            if c in blank:
                axes[r, c].set_axis_on()
                axes[r, c].set_xticks([])
                axes[r, c].set_yticks([])
                for side in axes[r, c].spines.values():
                    side.set_edgecolor("red")
                    side.set_linewidth(1.5)
                axes[r, c].text(0.5, 0.5, "blank", transform=axes[r, c].transAxes, ha="center", va="center",
                                fontsize=6, color="red")
        note = f", {len(blank)} blank" if blank else ""
        axes[r, 0].set_title(f"{name} {m.shape[0]}×{m.shape[1]}×{m.shape[2]}{note}", fontsize=7, loc="left")
    if title:
        fig.suptitle(title)
    return save(fig, path)


# ---------------------------------------------------------------------------------------------
# inside a trained model: sparsity by depth, Grad-CAM, the sliding class map (convlab.inspect)


def _as_display(img):
    """(C, H, W) uint8 or float → (image for imshow, colour map): grey for one channel, RGB for three."""
    t = img.detach().float().cpu()
    if t.shape[0] == 3:
        lo, hi = t.min(), t.max()
        return ((t - lo) / (hi - lo).clamp(min=1e-12)).permute(1, 2, 0).numpy(), None
    return t[0].numpy(), "gray"


def plot_sparsity(stats, path, title: str = "") -> Path:
    """Exact zeros, blank channels per image and dead channels of each activation layer, in depth order
    (an :class:`~convlab.inspect.ActivationStats`); layers after the flatten are shaded."""
    plt = _plt()
    layers = stats.layers
    n = len(layers)
    xs = list(range(n))
    fig, ax = plt.subplots(figsize=(max(7.5, 0.55 * n + 3), 4.6))
    vec = [i for i, s in enumerate(layers) if s.kind == "vector"]
    if vec:
        ax.axvspan(min(vec) - 0.5, max(vec) + 0.5, color="0.93", zorder=0)
        ax.text((min(vec) + max(vec)) / 2, 101.5, "fc layers (a channel is one unit)", ha="center", va="bottom",
                fontsize=7.5, color="0.35")
    ax.bar(xs, [100 * len(s.dead) / s.channels for s in layers], width=0.5, color="0.75", label="dead channels "
           "(zero for every image)", zorder=1)
    ax.plot(xs, [100 * s.zeros for s in layers], "o-", color="tab:red", label="exact zeros", zorder=3)
    ax.plot(xs, [100 * s.blank for s in layers], "s--", color="tab:blue", label="blank channels per image (mean)",
            zorder=3)
    for i, s in enumerate(layers):
        ax.annotate(f"{100 * s.zeros:.0f}%", (i, 100 * s.zeros), textcoords="offset points", xytext=(0, 7),
                    ha="center", fontsize=8, color="tab:red")
    labels = [f"{s.name}\n{'×'.join(map(str, s.shape))}" for s in layers]
    rot = 0 if n <= 6 else 60
    ax.set_xticks(xs, labels, rotation=rot, ha="center" if rot == 0 else "right", fontsize=8)
    ax.set_xlim(-0.6, n - 0.4)
    ax.set_ylim(0, 110)
    ax.set_ylabel("% of values / of channels")
    ax.set_xlabel("activation layer, in depth order (output shape per image)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.28 if rot == 0 else -0.45), ncol=3, fontsize=8,
              frameon=False)
    where = stats.images
    what = f"{stats.n_images:,} {where.get('split', '')} images".replace("  ", " ")
    ax.set_title(title or f"{stats.model + ': ' if stats.model else ''}sparsity by depth over {what}", fontsize=10)
    return save(fig, path)


def plot_gradcam(images, cams, captions, path, title: str = "") -> Path:
    """One column per image: the image, then its Grad-CAM map (each scaled to its own maximum) over it."""
    plt = _plt()
    k = len(images)
    fig, axes = plt.subplots(2, k, figsize=(2.1 * k + 0.9, 4.9), squeeze=False)
    im = None
    for j, (img, cam, cap) in enumerate(zip(images, cams, captions)):
        shown, cmap = _as_display(img)
        axes[0, j].imshow(shown, cmap=cmap, interpolation="nearest")
        axes[0, j].set_title(cap, fontsize=8)
        m = cam.detach().float().cpu()
        m = m / m.max() if float(m.max()) > 0 else m
        axes[1, j].imshow(shown, cmap=cmap, interpolation="nearest")
        im = axes[1, j].imshow(m.numpy(), cmap="jet", alpha=0.5, vmin=0, vmax=1, interpolation="bilinear")
        for a in axes[:, j]:
            a.set_axis_off()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.9, 1))
    cax = fig.add_axes((0.92, 0.12, 0.015, 0.33))
    fig.colorbar(im, cax=cax).set_label("Grad-CAM / its max", fontsize=8)
    return save(fig, path, tight=False)


def plot_class_map(shown, grid, classes: list[str], path, title: str = "", tiles: list[dict] | None = None) -> Path:
    """A :class:`~convlab.inspect.ClassGrid` drawn over the image it was computed on: the image (for a
    canvas of tiles, each tile's true class and the model's prediction on that tile alone), the class of
    each window coloured at the window's centre (the windows that are exactly one tile outlined), and the
    winning probability of each window."""
    import numpy as np
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch, Rectangle

    plt = _plt()
    img, cmap = _as_display(shown)
    h, w = img.shape[:2]
    k = len(classes)
    colours = plt.get_cmap("tab10" if k <= 10 else "tab20")(np.arange(k) % (10 if k <= 10 else 20))
    (sh, sw), (cy, cx) = grid.stride, grid.centre
    gh, gw = grid.scores.shape[1:]
    extent = (cx - sw / 2, cx + (gw - 1) * sw + sw / 2, cy + (gh - 1) * sh + sh / 2, cy - sh / 2)
    fig = plt.figure(figsize=(14, 5.6))
    gs = fig.add_gridspec(1, 3, left=0.01, right=0.95, top=0.86, bottom=0.1, wspace=0.06)
    axes = [fig.add_subplot(gs[0, i]) for i in range(3)]
    for a in axes:
        a.set_xlim(-0.5, w - 0.5)
        a.set_ylim(h - 0.5, -0.5)
        a.set_xticks([])
        a.set_yticks([])
    axes[0].imshow(img, cmap=cmap, interpolation="nearest")
    axes[1].imshow(img, cmap=cmap, interpolation="nearest")
    axes[2].set_facecolor("0.85")
    axes[0].set_title(f"input {h}×{w} (H×W)" + ("; each tile: true class / predicted alone" if tiles else ""), fontsize=9)
    for t in tiles or []:
        y0, x0, th, tw = t["box"]
        for a in (axes[0], axes[2]):
            a.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), tw, th, fill=False, ec="yellow" if a is axes[0] else "white",
                                  lw=0.6, zorder=4))
        wrong = "  ✗" if t["alone"] != t["true"] else ""
        axes[0].text(x0 + 1, y0 + 1, f"{classes[t['true']]}\n{classes[t['alone']]}{wrong}", fontsize=6, va="top",
                     ha="left", color="yellow", bbox=dict(fc="black", alpha=0.55, pad=0.8, lw=0))
        cell = grid.cell_of(y0, x0)
        if cell is not None:   # the window that is exactly this tile, at the tile's centre
            yc, xc = cy + cell[0] * sh, cx + cell[1] * sw
            for a in (axes[1], axes[2]):
                a.add_patch(Rectangle((xc - sw / 2, yc - sh / 2), sw, sh, fill=False, ec="white", lw=1.4, zorder=4))
    axes[1].imshow(grid.classes.numpy(), cmap=ListedColormap(colours), vmin=-0.5, vmax=k - 0.5, alpha=0.7,
                   extent=extent, interpolation="nearest")
    axes[1].set_title(f"class of each {grid.window[0]}×{grid.window[1]} window, at its centre ({gh}×{gw} windows, "
                      f"{sh} px apart)" + ("\nwhite: the windows that are exactly one tile" if tiles else ""), fontsize=9)
    im = axes[2].imshow(grid.probs.max(0).values.numpy(), cmap="viridis", vmin=0, vmax=1, extent=extent,
                        interpolation="nearest")
    axes[2].set_title("probability of that class", fontsize=9)
    axes[2].apply_aspect()
    box = axes[2].get_position()
    fig.colorbar(im, cax=fig.add_axes((box.x1 + 0.01, box.y0, 0.012, box.height)))
    used = sorted(set(grid.classes.flatten().tolist()))
    fig.legend(handles=[Patch(color=colours[c], label=classes[c]) for c in used], loc="lower center",
               ncol=min(len(used), 10), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10, y=0.975)
    return save(fig, path, tight=False)

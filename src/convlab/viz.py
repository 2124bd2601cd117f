"""Plots: training curves and confusion matrices (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path) -> Path:
    """Lay out, write as PNG, and free the figure."""
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

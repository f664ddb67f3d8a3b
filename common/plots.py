"""Plots saved as PNG: learning curves and image grids."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt  # picks the headless Agg backend when there is no display
import torch

from common.distributed import is_main
from common.fileio import atomic_target


def save_figure(fig, path, dpi: int = 110) -> None:
    """Write ``fig`` to ``path`` (format from its suffix, e.g. PNG) atomically, and close it. Under torchrun
    only process 0 writes."""
    path = Path(path)
    if is_main():
        with atomic_target(path) as tmp:
            fig.savefig(tmp, dpi=dpi, format=path.suffix.lstrip(".") or "png")
    plt.close(fig)


def plot_history(history: list[dict], path, keys: tuple[str, ...] = ("loss", "error_pct"),
                 title: str | None = None):
    """One panel per metric in ``keys``: its ``train_*``, ``val_*`` and ``test_*`` curves (those recorded)
    against epochs."""
    splits = ("train", "val", "test")
    keys = [k for k in keys if any(f"{s}_{k}" in h for h in history for s in splits)]
    fig, axes = plt.subplots(1, max(len(keys), 1), figsize=(5 * max(len(keys), 1), 3.6), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for split in splits:
            pts = [(h["epoch"], h[f"{split}_{key}"]) for h in history if f"{split}_{key}" in h]
            if pts:
                ax.plot(*zip(*pts), marker="o", ms=3, label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        if key.endswith("pct") or key == "loss":
            ax.set_yscale("log")
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig


def image_grid(images: torch.Tensor, titles: list[str] | None = None, ncols: int = 10, path=None,
               cmap: str = "gray", size: float = 1.2):
    """Show N x C x H x W (or N x H x W) images in a grid; save to ``path`` if given. uint8 images are read
    as 0-255, float images as 0-1."""
    images = images.detach().cpu()
    images = images.float() / 255 if images.dtype == torch.uint8 else images.float()
    if images.dim() == 4:
        images = images.permute(0, 2, 3, 1).squeeze(-1)
    n = len(images)
    nrows = max(1, -(-n // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.2 * bool(titles)),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(images[i].numpy(), cmap=cmap)
            if titles:
                ax.set_title(titles[i], fontsize=8)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig

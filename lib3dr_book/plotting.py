"""Figures for the chapters: image grids, loss curves, GIFs, all written under the book's ``build/``.

Chapters import these instead of repeating matplotlib code; each function returns what it drew or
wrote so that a notebook can show it and a test can check it.
"""
import matplotlib.pyplot as plt
import numpy as np
import torch

from lib3dr_book.paths import build_path


def to_numpy_image(image):
    """(H, W), (H, W, 3) or (H, W, 4) tensor or array -> numpy array for imshow, RGB(A) clipped to [0, 1]."""
    if torch.is_tensor(image):
        image = image.detach().cpu().float().numpy()
    image = np.asarray(image)
    return np.clip(image, 0.0, 1.0) if image.ndim == 3 else image


def image_grid(images, titles=None, columns=None, suptitle=None, cmap="gray", size=3.0,
               colorbar=False, vmin=None, vmax=None):
    """Shows images side by side (rows of ``columns``) without axes; returns the figure."""
    images = list(images)
    columns = columns or len(images)
    rows = (len(images) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(size * columns, size * rows), squeeze=False)
    for index, ax in enumerate(axes.flat):
        ax.axis("off")
        if index >= len(images):
            continue
        shown = ax.imshow(to_numpy_image(images[index]), cmap=cmap, vmin=vmin, vmax=vmax)
        if titles is not None:
            ax.set_title(titles[index])
        if colorbar:
            fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def plot_curves(curves, title, xlabel="iteration", ylabel="loss", log=False):
    """One line per entry of ``curves`` (a dict name -> sequence of values); returns the figure."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, values in curves.items():
        ax.plot(np.asarray(values), label=name)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    if log:
        ax.set_yscale("log")
    if len(curves) > 1:
        ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def save_figure(fig, name):
    """Writes ``fig`` to ``build/figures/<name>.png`` and returns the path."""
    path = build_path("figures", f"{name}.png")
    fig.savefig(path, dpi=100)
    return path


def write_gif(frames, name, fps=10):
    """Writes frames ((H, W, 3) tensors or arrays in [0, 1]) to ``build/figures/<name>.gif``."""
    import imageio.v2 as imageio

    path = build_path("figures", f"{name}.gif")
    frames = [(to_numpy_image(frame)[..., :3] * 255).astype(np.uint8) for frame in frames]
    imageio.mimsave(path, frames, duration=1.0 / fps, loop=0)
    return path

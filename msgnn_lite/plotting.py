"""One plotting style for every notebook, and figures saved atomically into figures/."""
from __future__ import annotations

from pathlib import Path

import matplotlib

import matplotlib.pyplot as plt
import seaborn as sns

from .utils import atomic_path, figures_dir, repo_root

__all__ = ["set_style", "savefig", "PALETTE"]

PALETTE = sns.color_palette("colorblind")


def set_style(context: str = "notebook") -> None:
    """The project's look: seaborn's whitegrid, the colorblind palette, crisp PNGs."""
    sns.set_theme(context=context, style="whitegrid", palette=PALETTE)
    matplotlib.rcParams.update({
        "figure.dpi": 100,
        "savefig.dpi": 150,
        "savefig.bbox": "tight",
        "axes.titleweight": "bold",
        "axes.spines.top": False,
        "axes.spines.right": False,
        "legend.frameon": False,
    })


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def savefig(fig, name: str, directory: str | Path | None = None, show: bool | None = None) -> str:
    """Save ``fig`` as ``<figures>/<name>.png`` atomically; return the path relative to
    the repository (safe to print in a notebook: no machine-specific prefix).

    ``show`` (default: when running in a Jupyter kernel, papermill's included): also display the
    saved PNG in the cell's output, so the plot is where the reader looks, whatever the
    matplotlib backend (``MPLBACKEND=Agg`` under papermill and CI shows nothing by itself). The
    figure is then closed, so an inline backend does not show it a second time."""
    if not name or "/" in name or "\\" in name:
        raise ValueError(f"name must be a plain file name such as '00_epoch_time', got {name!r}")
    folder = Path(directory) if directory is not None else figures_dir()
    path = folder / (name if name.endswith(".png") else f"{name}.png")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    if show if show is not None else _in_kernel():
        from IPython.display import Image, display

        display(Image(filename=str(path)))
        plt.close(fig)
    try:
        return str(path.resolve().relative_to(repo_root()))
    except ValueError:
        return path.name

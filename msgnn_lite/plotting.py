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


def savefig(fig, name: str, directory: str | Path | None = None) -> str:
    """Save ``fig`` as ``<figures>/<name>.png`` atomically; return the path relative to
    the repository (safe to print in a notebook: no machine-specific prefix)."""
    if not name or "/" in name or "\\" in name:
        raise ValueError(f"name must be a plain file name such as '00_epoch_time', got {name!r}")
    folder = Path(directory) if directory is not None else figures_dir()
    path = folder / (name if name.endswith(".png") else f"{name}.png")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    try:
        return str(path.resolve().relative_to(repo_root()))
    except ValueError:
        return path.name

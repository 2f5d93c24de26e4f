"""One style for every PNG mlff writes, a caption saying what produced it, and the plotted series
saved beside it (``run.png`` -> ``run.png.json``), so that what a figure shows can be read back."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from mlff.fileio import atomic_path, atomic_write  # noqa: E402

STYLE = {
    "figure.dpi": 110, "font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "legend.fontsize": 8,
    "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False,
    "lines.linewidth": 1.1,
}
#: at most this many points per line: long runs are thinned evenly (fits use every point)
MAX_POINTS = 2000


def figure(rows: int, height: float = 2.4, width: float = 7.5, sharex: bool = True):
    """A figure of ``rows`` stacked panels in the package style; returns ``(fig, axes)``."""
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(rows, 1, figsize=(width, height * rows + 0.4), sharex=sharex, squeeze=False)
    return fig, list(axes[:, 0])


def thinned(*columns):
    """The columns with at most :data:`MAX_POINTS` evenly spaced points (the last one kept)."""
    n = len(columns[0])
    if n <= MAX_POINTS:
        return [np.asarray(c) for c in columns]
    index = np.unique(np.append(np.linspace(0, n - 1, MAX_POINTS).astype(int), n - 1))
    return [np.asarray(c)[index] for c in columns]


def save(fig, path, data: dict, caption: str) -> None:
    """Write the PNG (with ``caption`` in its bottom-left corner) and ``<path>.json`` holding ``data``
    (the series as plotted) and the caption; both atomically."""
    lines = textwrap.wrap(caption, width=int(fig.get_figwidth() * 17)) or [""]
    with plt.rc_context(STYLE):
        fig.text(0.01, 0.005, "\n".join(lines), fontsize=7, color="0.35", ha="left", va="bottom")
        fig.tight_layout(rect=(0, 0.12 * len(lines) / fig.get_figheight(), 1, 1))
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
    plt.close(fig)
    with atomic_write(f"{path}.json") as fh:
        json.dump({"caption": caption, **data}, fh, default=_plain)


def read_data(path) -> dict:
    """The series saved beside the PNG ``path`` by :func:`save`."""
    return json.loads(Path(f"{path}.json").read_text())


def _plain(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot save {type(value).__name__} beside a figure")

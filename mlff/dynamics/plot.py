"""PNG traces of a run: energies, temperature (and for NPT pressure and volume) versus time (MD), or
energy and fmax (relaxation)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from mlff.fileio import atomic_path  # noqa: E402


def plot_run(series: dict, path: str, title: str = "") -> None:
    if "time_ps" in series:
        x, xlabel = series["time_ps"], "time (ps)"
        panels = [(("total", "potential", "kinetic"), "energy (eV)"), (("temperature",), "temperature (K)")]
        if "pressure" in series:
            panels += [(("pressure",), "pressure (GPa)"), (("volume",), "volume (Å$^3$)")]
    else:
        x, xlabel = series["step"], "optimizer step"
        panels = [(("potential",), "energy (eV)"), (("fmax",), "max force (eV/Å)")]
    fig, axes = plt.subplots(len(panels), 1, figsize=(7, 3 * len(panels)), sharex=True)
    for ax, (keys, label) in zip(axes, panels):
        for key in keys:
            ax.plot(x, series[key], label=key)
        ax.set_ylabel(label)
        if len(keys) > 1:
            ax.legend(loc="best")
    if "fmax" in series:
        axes[1].set_yscale("log")
    axes[-1].set_xlabel(xlabel)
    axes[0].set_title(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)

"""Learning-curve and parity PNGs (:mod:`mlff.plotting` style, series saved beside them).

The learning curve shows, per validation, the training error (averaged over the steps since the
previous validation, live weights) next to the validation error (evaluated weights), one panel per
quantity, with the learning rate on a second axis. Parity plots name the split and give MAE and
RMSE in the title; force components are coloured by element; above :data:`DENSITY_POINTS` points a
log-density view (hexbin) replaces the scatter.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase.data import chemical_symbols
from matplotlib.colors import LogNorm

from mlff.plotting import figure, save
from mlff.train.evaluation import iter_predictions

#: parity plots with more points than this are drawn as a log-density map
DENSITY_POINTS = 20000
QUANTITIES = (("energy", "energy MAE (meV/atom)"), ("force", "force MAE (meV/Å)"), ("stress", "stress MAE (meV/Å³)"))


def learning_curve(history: list[dict], path, caption: str) -> None:
    if not history:
        return
    steps = np.array([h["step"] for h in history])
    shown = [(key, label) for key, label in QUANTITIES if f"val_{key}_mae" in history[0]]
    if not shown:  # EMPP pre-training: its validation KL only
        shown = [("empp", "EMPP KL (nats)")]
    fig, axes = figure(len(shown), height=2.3)
    data = {"step": steps, "lr": [h["lr"] for h in history]}
    for ax, (key, label) in zip(axes, shown):
        for split, style in (("train", "--"), ("val", "-")):
            name = f"{split}_{key}_mae" if key != "empp" else f"{split}_{key}"
            if any(name in h for h in history):  # a resumed run may lack the first entries' training errors
                values = [h.get(name, np.nan) for h in history]
                data[name] = values
                ax.semilogy(steps, values, style, marker="o", ms=2.5, label="train" if split == "train" else "validation")
        ax.set_ylabel(label)
        ax.legend(loc="upper right")
    lr_axis = axes[0].twinx()
    lr_axis.plot(steps, data["lr"], color="0.5", lw=0.8, label="learning rate")
    lr_axis.set_ylabel("learning rate", color="0.4")
    lr_axis.tick_params(axis="y", colors="0.4")
    lr_axis.grid(False)
    trained = any(name.startswith("train_") for name in data)
    axes[0].set_title("learning curve" + (" (train: mean over the steps since the last validation)" if trained else ""))
    axes[-1].set_xlabel("optimizer step")
    save(fig, path, data, caption)


def parity_plots(model, structures, prefix, device, dtype, split: str, caption: str, batch_size: int = 16) -> None:
    """``<prefix>_energy.png`` and ``<prefix>_forces.png`` for ``structures`` (the ``split``)."""
    if not structures:
        return
    ref_e, pred_e, ref_f, pred_f, elements = [], [], [], [], []
    for graph, out in iter_predictions(model, structures, batch_size, device, dtype):
        n = graph.atoms_per_graph.double().cpu()
        ref_e += (graph.energy.double().cpu() / n).tolist()
        pred_e += (out["energy"].double().cpu() / n).tolist()
        if graph.forces is not None:
            ref_f.append(graph.forces.double().cpu().numpy().ravel())
            pred_f.append(out["forces"].double().cpu().numpy().ravel())
            elements.append(np.repeat(graph.numbers.cpu().numpy(), 3))
    panels = [("energy", np.array(ref_e), np.array(pred_e), None, "energy per atom (eV)", "meV/atom")]
    if ref_f:
        panels.append(("forces", np.concatenate(ref_f), np.concatenate(pred_f), np.concatenate(elements),
                       "force component (eV/Å)", "meV/Å"))
    for name, ref, pred, numbers, label, unit in panels:
        error = 1000 * (pred - ref)
        mae, rmse = float(np.abs(error).mean()), float(np.sqrt((error ** 2).mean()))
        fig, (ax,) = figure(1, height=4.6, width=5.2)
        data = {"split": split, "points": len(ref), "mae": mae, "rmse": rmse, "unit": unit}
        if len(ref) <= DENSITY_POINTS:  # the points themselves; a density view saves its summary only
            data.update(reference=ref, predicted=pred)
        if len(ref) > DENSITY_POINTS:
            cells = ax.hexbin(ref, pred, gridsize=80, norm=LogNorm(), cmap="viridis", mincnt=1)
            fig.colorbar(cells, ax=ax, label="points per cell")
            data["view"] = "log density"
        elif numbers is not None:
            for z in np.unique(numbers):
                mask = numbers == z
                ax.scatter(ref[mask], pred[mask], s=4, alpha=0.5, label=chemical_symbols[int(z)])
            ax.legend(loc="upper left", markerscale=3)
            data.update(view="scatter by element", elements=numbers)
        else:
            ax.scatter(ref, pred, s=6, alpha=0.6)
            data["view"] = "scatter"
        lo, hi = float(min(ref.min(), pred.min())), float(max(ref.max(), pred.max()))
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set_xlabel(f"reference {label}")
        ax.set_ylabel(f"predicted {label}")
        ax.set_title(f"{split} ({len(structures)} structures)\nMAE {mae:.3g}, RMSE {rmse:.3g} {unit}")
        save(fig, Path(f"{prefix}_{name}.png"), data, caption)

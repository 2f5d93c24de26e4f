"""Learning-curve and parity PNGs."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from mlff.fileio import atomic_path  # noqa: E402
from mlff.train.evaluation import iter_predictions  # noqa: E402


def _save(fig, path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def learning_curve(history: list[dict], path) -> None:
    if not history:
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    steps = [h["step"] for h in history]
    curves = {"val_energy_rmse": "energy RMSE (meV/atom)", "val_force_rmse": "force RMSE (meV/Å)",
              "val_stress_rmse": "stress RMSE (meV/Å³)", "val_empp": "EMPP KL (nats)"}
    for key, label in curves.items():
        if key in history[0]:
            ax.semilogy(steps, [h[key] for h in history], label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("validation error")
    ax.legend()
    fig.tight_layout()
    _save(fig, path)


def parity_plots(model, structures, prefix, device, dtype, batch_size: int = 16) -> None:
    """``<prefix>_energy.png`` and ``<prefix>_forces.png`` for ``structures``."""
    if not structures:
        return
    ref_e, pred_e, ref_f, pred_f = [], [], [], []
    for graph, out in iter_predictions(model, structures, batch_size, device, dtype):
        n = graph.atoms_per_graph.double().cpu()
        ref_e += (graph.energy.double().cpu() / n).tolist()
        pred_e += (out["energy"].double().cpu() / n).tolist()
        if graph.forces is not None:
            ref_f.append(graph.forces.double().cpu().numpy().ravel())
            pred_f.append(out["forces"].double().cpu().numpy().ravel())
    panels = [("energy", np.array(ref_e), np.array(pred_e), "energy per atom (eV)")]
    if ref_f:
        panels.append(("forces", np.concatenate(ref_f), np.concatenate(pred_f), "force component (eV/Å)"))
    for name, ref, pred, label in panels:
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
        ax.scatter(ref, pred, s=4, alpha=0.5)
        lo, hi = float(min(ref.min(), pred.min())), float(max(ref.max(), pred.max()))
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set_xlabel(f"reference {label}")
        ax.set_ylabel(f"predicted {label}")
        fig.tight_layout()
        _save(fig, Path(f"{prefix}_{name}.png"))

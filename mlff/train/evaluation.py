"""Batched evaluation of a model on structures: predictions, errors (and the loss) and their summary."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from ase import Atoms

from mlff.data.dataset import GraphDataset
from mlff.data.graph import AtomicGraph
from mlff.models.energy_model import EnergyModel
from mlff.train.config import LossConfig
from mlff.train.loss import Metrics
from mlff.train.oc20_metrics import S2EFMetrics


def iter_batches(structures: Sequence[Atoms], cutoff: float, batch_size: int, device, dtype) -> Iterator[AtomicGraph]:
    """``structures`` as batched graphs on ``device``, in order."""
    dataset = GraphDataset(structures, cutoff, dtype=dtype, cache=False)  # each graph is used once
    for start in range(0, len(dataset), batch_size):
        yield dataset.collate([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]).to(device)


def iter_predictions(model: EnergyModel, structures: Sequence[Atoms], batch_size: int, device,
                     dtype) -> Iterator[tuple[AtomicGraph, dict]]:
    """(batch, outputs) of ``model`` in eval mode: energies, and forces and stress where labelled."""
    model.eval()
    for graph in iter_batches(structures, model.cutoff, batch_size, device, dtype):
        yield graph, model(graph, forces=graph.forces is not None, stress=graph.stress is not None)


def evaluate(model: EnergyModel, structures: Sequence[Atoms], batch_size: int, device, dtype,
             loss: LossConfig | None = None, progress: float = 0.0) -> dict[str, float]:
    """Energy (meV/atom), force (meV/Å) and stress (meV/Å³) MAE/RMSE of ``model`` on labelled structures.

    Given a loss config, also ``loss``: the training loss at ``progress`` over all the structures.
    """
    metrics = Metrics(loss, progress)
    for graph, out in iter_predictions(model, structures, batch_size, device, dtype):
        metrics.update(out, graph)
    return metrics.result()


def evaluate_s2ef(model: EnergyModel, structures: Sequence[Atoms], batch_size: int, device, dtype) -> dict[str, float]:
    """OC20's S2EF metrics of ``model`` (:mod:`mlff.train.oc20_metrics`): fixed atoms left out of the forces."""
    metrics = S2EFMetrics()
    for graph, out in iter_predictions(model, structures, batch_size, device, dtype):
        metrics.update(out, graph)
    return metrics.result()


def format_s2ef(m: dict) -> str:
    return (f"S2EF: energy MAE {m['energy_mae']:.4f} eV, force MAE {m['force_mae']:.4f} eV/Å and cosine "
            f"{m['force_cos']:.4f} over {m['free_atoms']} free atoms, EFwT {100 * m['efwt']:.1f} %")


def format_metrics(m: dict) -> str:
    if "energy_mae" not in m:
        return f"EMPP KL {m['empp']:.4f} (radius {m['empp_radius']:.4f}, direction {m['empp_direction']:.4f})"
    text = f"loss {m['loss']:.4g}  " if "loss" in m else ""
    text += f"E MAE {m['energy_mae']:.2f} RMSE {m['energy_rmse']:.2f} meV/atom"
    if "force_mae" in m:
        text += f"  F MAE {m['force_mae']:.1f} RMSE {m['force_rmse']:.1f} meV/Å"
    if "stress_mae" in m:
        text += f"  S MAE {m['stress_mae']:.2f} RMSE {m['stress_rmse']:.2f} meV/Å³"
    return text

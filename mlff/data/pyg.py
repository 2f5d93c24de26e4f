"""``AtomicGraph`` <-> torch-geometric ``Data``/``Batch``, so that PyG pipelines can feed mlff models.

:func:`to_pyg` writes OC20's field names (``pos``, ``atomic_numbers``, ``cell`` [1, 3, 3], ``natoms``,
``tags``, ``fixed``, ``y``, ``force``, ``edge_index``, ``cell_offsets``) plus ``pbc`` and ``stress``,
one ``Data`` per structure, batched. :func:`from_pyg` reads any such object (OC20 LMDB frames included)
and builds the graph with mlff's own neighbour list at the model's cutoff: the edges a PyG pipeline
carries are ignored, because OC20-style graphs cap the neighbours per atom (50 in fairchem's configs),
and a cap makes the energy jump when atoms swap places in the neighbour ranking, so that forces are
no longer its gradient.
"""

from __future__ import annotations

import torch

from mlff.data.formats import canonical_labels
from mlff.data.graph import AtomicGraph
from mlff.data.labels import LabelKeys
from mlff.data.lmdb import PYG_KEYS, data_fields, pyg_atoms


def _pyg():
    try:
        from torch_geometric.data import Batch, Data
    except ImportError:
        from mlff.errors import DataError

        raise DataError("torch-geometric conversion needs torch_geometric: pip install 'mlff[oc20]'") from None
    return Batch, Data


def to_pyg(graph: AtomicGraph):
    """A torch-geometric ``Batch`` of the graph's structures (labels, tags and fixed atoms where present)."""
    Batch, Data = _pyg()
    items = []
    edge_graph = graph.batch[graph.edge_index[1]]
    for b in range(graph.num_graphs):
        lo, hi = int(graph.ptr[b]), int(graph.ptr[b + 1])
        edges = edge_graph == b
        fields = dict(pos=graph.positions[lo:hi], atomic_numbers=graph.numbers[lo:hi], cell=graph.cell[b:b + 1],
                      pbc=graph.pbc[b:b + 1], natoms=hi - lo, edge_index=graph.edge_index[:, edges] - lo,
                      cell_offsets=graph.shifts[edges])
        for name, key in (("tags", "tags"), ("fixed", "fixed"), ("forces", "force")):
            if getattr(graph, name) is not None:
                fields[key] = getattr(graph, name)[lo:hi]
        if graph.energy is not None:
            fields["y"] = graph.energy[b:b + 1]
        if graph.stress is not None:
            fields["stress"] = graph.stress[b:b + 1]
        items.append(Data(**fields))
    return Batch.from_data_list(items)


def from_pyg(data, cutoff: float, keys: LabelKeys = PYG_KEYS, dtype: torch.dtype | None = None,
             device=None) -> AtomicGraph:
    """The ``AtomicGraph`` of a torch-geometric ``Data`` or ``Batch`` (any version), with mlff's edges at
    ``cutoff`` and the labels found under ``keys`` (OC20's ``y``/``force`` by default)."""
    items = data.to_data_list() if hasattr(data, "to_data_list") else [data]
    structures = []
    for k, item in enumerate(items):
        where = f"torch-geometric object {k}"
        fields = data_fields(item, where)
        atoms = pyg_atoms(fields, where)
        canonical_labels(atoms, keys, (), where)
        structures.append(atoms)
    return AtomicGraph.from_atoms(structures, cutoff, dtype=dtype or torch.get_default_dtype(), device=device)

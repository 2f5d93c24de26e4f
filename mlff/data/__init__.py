"""Atoms <-> graphs: batches, neighbour lists, labels, readers, datasets, statistics, generators."""

from mlff.data.graph import AtomicGraph, collate
from mlff.data.labels import LabelKeys, get_labels, set_labels
from mlff.data.neighbors import NeighborList, neighbor_list
from mlff.data.validation import validate_atoms

__all__ = [
    "AtomicGraph",
    "LabelKeys",
    "NeighborList",
    "collate",
    "get_labels",
    "neighbor_list",
    "set_labels",
    "validate_atoms",
]

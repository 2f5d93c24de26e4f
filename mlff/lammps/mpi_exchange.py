"""The ghost exchange over MPI, for engines that give each rank its owned atoms and ghosts by tag
(LAMMPS's ``fix external``, which has no exchange of its own).

A :class:`GhostPlan` is built collectively from every rank's atom tags (owned first, then ghosts):
for each ghost, the rank that owns its tag and the row there. :meth:`GhostPlan.forward` takes the
owned atoms' rows and returns every atom's, the ghosts with their owners' rows;
:meth:`GhostPlan.reverse` is its adjoint, summing every atom's rows into the owned atoms'.
:func:`mpi_exchange` wraps both as one autograd op, so the backward of every rank's energy runs the
reverse exchanges in lockstep: every rank must call the model together. A ghost whose owner is the same rank (a periodic image) goes through the same path.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from mlff.errors import StructureError


class GhostPlan:
    def __init__(self, comm, tags: np.ndarray, n_owned: int):
        self.comm, self.n_owned, self.n_total = comm, n_owned, len(tags)
        self.seconds = 0.0  # spent in forward and reverse
        size = comm.Get_size()
        owned = comm.allgather(np.ascontiguousarray(tags[:n_owned], dtype=np.int64))
        all_tags = np.concatenate(owned)
        ranks = np.concatenate([np.full(len(t), r) for r, t in enumerate(owned)])
        rows = np.concatenate([np.arange(len(t)) for t in owned])
        order = np.argsort(all_tags, kind="stable")
        ghost_tags = np.asarray(tags[n_owned:], dtype=np.int64)
        at = np.searchsorted(all_tags[order], ghost_tags)
        found = (at < len(order)) & (all_tags[order][np.minimum(at, len(order) - 1)] == ghost_tags)
        if not found.all():
            raise StructureError(f"ghost atom tag {int(ghost_tags[~found][0])} is owned by no rank")
        owner_rank, owner_row = ranks[order][at], rows[order][at]
        ghost_rows = np.arange(n_owned, self.n_total)
        #: rows of this rank's ghost atoms, grouped by the rank that owns them
        self.receive = [ghost_rows[owner_rank == r] for r in range(size)]
        #: rows of this rank's owned atoms that each rank holds as ghosts (in that rank's order)
        self.send = comm.alltoall([owner_row[owner_rank == r] for r in range(size)])

    def forward(self, x: np.ndarray) -> np.ndarray:
        """``[n_owned, ...]`` -> ``[n_total, ...]``: the ghost rows from their owners."""
        start = time.perf_counter()
        got = self.comm.alltoall([x[rows] for rows in self.send])
        out = np.zeros((self.n_total, *x.shape[1:]), dtype=x.dtype)
        out[: self.n_owned] = x
        for rows, values in zip(self.receive, got):
            out[rows] = values
        self.seconds += time.perf_counter() - start
        return out

    def reverse(self, g: np.ndarray) -> np.ndarray:
        """The adjoint of :meth:`forward`, ``[n_total, ...]`` -> ``[n_owned, ...]``: the ghost rows
        summed into their owners."""
        start = time.perf_counter()
        got = self.comm.alltoall([g[rows] for rows in self.receive])
        out = g[: self.n_owned].copy()
        for rows, values in zip(self.send, got):
            np.add.at(out, rows, values)
        self.seconds += time.perf_counter() - start
        return out


class _Exchange(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, plan: GhostPlan) -> torch.Tensor:
        ctx.plan = plan
        return torch.from_numpy(plan.forward(x.detach().cpu().numpy())).to(x.device)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return torch.from_numpy(ctx.plan.reverse(grad.detach().cpu().contiguous().numpy())).to(grad.device), None


def mpi_exchange(plan: GhostPlan):
    """The exchange hook for :func:`mlff.models.local.local_forward`."""
    return lambda x: _Exchange.apply(x, plan)

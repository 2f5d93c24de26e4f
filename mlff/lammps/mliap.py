"""An ML-IAP "unified" model for LAMMPS (``pair_style mliap unified FILE GHOSTNEIGH``).

LAMMPS calls :meth:`MLFFUnified.compute_forces` with its data object: owned ("local") atoms first,
then ghosts, and the directed pairs ``(pair_i, pair_j)`` with ``rij = x_j - x_i``. The model returns
the owned atoms' energies (``data.eatoms``, ``data.energy``) and ``dE/drij`` per pair
(``data.update_pair_forces``), from which LAMMPS adds the forces (ghost forces reach their owners by
its reverse communication, hence ``newton on``) and the virial.

Two ways to get the ghosts' features right (:mod:`mlff.models.local`):

* KOKKOS builds (2025 and later) give the data object ``forward_exchange``/``reverse_exchange``: the
  features are exchanged before every block, and the halo is one cutoff (``GHOSTNEIGH`` 0).
* Otherwise the ghosts need their own pair lists (``GHOSTNEIGH`` 1) and a halo of the model's
  receptive field, (blocks + 1) x cutoff: ``comm_modify cutoff`` of at least that plus the skin.
  Without either, :meth:`compute_forces` stops with an error that names the halo.
"""

from __future__ import annotations

import numpy as np
import torch

from mlff.errors import ConfigError
from mlff.models.energy_model import EnergyModel
from mlff.lammps.types import SKIN, type_numbers
from mlff.models.local import local_forward, receptive_field

try:  # LAMMPS loads this file with its own Python; mlff itself does not need LAMMPS
    from lammps.mliap.mliap_unified_abc import MLIAPUnified
except ImportError:
    class MLIAPUnified:  # the constructor of LAMMPS's base class, which only stores its arguments
        def __init__(self, interface=None, element_types=None, ndescriptors=None, nparams=None, rcutfac=None):
            self.interface, self.element_types = interface, element_types
            self.ndescriptors, self.nparams, self.rcutfac = ndescriptors, nparams, rcutfac


class _KokkosExchange(torch.autograd.Function):
    """LAMMPS's ghost exchange as an autograd op: the owned atoms' rows in, every atom's out (ghosts
    with their owners' rows); backward, the ghosts' gradients summed into their owners."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, data) -> torch.Tensor:
        ctx.data, ctx.n_owned = data, x.shape[0]
        flat = x.reshape(x.shape[0], -1)
        full = torch.cat([flat, flat.new_zeros(int(data.ntotal) - x.shape[0], flat.shape[1])])
        out = torch.empty_like(full)
        data.forward_exchange(full, out, full.shape[1])
        return out.reshape(-1, *x.shape[1:])

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        flat = grad.reshape(grad.shape[0], -1).contiguous()
        out = torch.empty_like(flat)
        ctx.data.reverse_exchange(flat, out, flat.shape[1])
        return out[: ctx.n_owned].reshape(ctx.n_owned, *grad.shape[1:]), None


class MLFFUnified(MLIAPUnified):
    """An mlff :class:`EnergyModel` behind ML-IAP's unified interface. ``elements`` are the
    ``pair_coeff * *`` names of the LAMMPS atom types, in order."""

    def __init__(self, model: EnergyModel, elements: list[str]):
        numbers = type_numbers(model, elements)
        # ML-IAP's cutoff is 2 x rcutfac (its descriptor's element radius is 1)
        super().__init__(None, element_types=list(elements), ndescriptors=1, nparams=1, rcutfac=0.5 * model.cutoff)
        self.cutoff = model.cutoff
        self.halo = receptive_field(model)
        self.model = model.eval()
        self.numbers = numbers

    def compute_descriptors(self, data) -> None:
        """Not used: the model works on the pairs directly."""

    def compute_gradients(self, data) -> None:
        """Not used: :meth:`compute_forces` gives LAMMPS the pair forces."""

    def compute_forces(self, data) -> None:
        n_owned = int(getattr(data, "nlocal", data.nlistatoms))
        if hasattr(data, "forward_exchange"):
            exchange = lambda x: _KokkosExchange.apply(x, data)  # noqa: E731
        elif int(data.natomneigh) > int(data.nlistatoms):
            exchange = None
        else:
            raise ConfigError(
                "this LAMMPS has no ghost exchange (ML-IAP's KOKKOS coupling provides it), so mlff needs the ghost "
                f"atoms' own pair lists and a halo of its receptive field, {self.halo:g} Å: use "
                f"`pair_style mliap unified FILE 1` and `comm_modify cutoff {self.halo + SKIN:g}` (halo + skin)")
        # NumPy arrays, or CuPy ones on the GPU under KOKKOS: torch takes both without a copy
        vectors = torch.as_tensor(data.rij)
        device = vectors.device
        if next(self.model.parameters()).device != device:
            self.model.to(device)
        numbers = self.numbers.to(device)[torch.as_tensor(data.elems, device=device).long()]
        edge_index = torch.stack([torch.as_tensor(data.pair_j, device=device).long(),
                                  torch.as_tensor(data.pair_i, device=device).long()])
        result = local_forward(self.model, numbers, vectors, edge_index, n_owned, exchange)
        data.energy = float(result.energies.sum())
        if device.type == "cuda":  # KOKKOS on a GPU: its eatoms is a device view; forces take a tensor
            torch.as_tensor(data.eatoms, device=device)[:n_owned] = result.energies
            data.update_pair_forces_gpu(result.edge_gradients.contiguous())
        else:
            data.eatoms = result.energies.numpy()
            data.update_pair_forces(np.ascontiguousarray(result.edge_gradients.numpy()))

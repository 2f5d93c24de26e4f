"""Thermostats reach and hold their temperature, and the barostat its pressure, within statistical bounds.

The system is 32 atoms of gold's mass in a periodic box, interacting through a tiny untrained
EquiformerV2 (float64, :data:`~tests.dynamics.decks.TINY`): its energy is a smooth random function of
the positions. What is tested does not depend on the potential:

* canonical momenta are independent of the positions, so for any potential the kinetic temperature
  ``T = 2 E_kin / (N_dof k_B)`` is ``T0 / N_dof`` times a chi-square variable with ``N_dof`` degrees of
  freedom: ``<T> = T0``, ``std(T) = T0 sqrt(2 / N_dof)``;
* the MTK barostat's volume momentum is stationary, which fixes the mean pressure (see the NPT test).

The random landscape makes the motion chaotic, which Nose-Hoover needs to be ergodic (the variance test
checks it). The network has no repulsive core, so atoms can pass through each other: the heavy mass and
dilute boxes keep close approaches rare (closest approach 0.38-3.8 Å in these runs over network seeds
0-2; the calculator rejects 0.1 Å and the guard here stops at 0.2 Å).

Statistics: series are sampled every step. The integrated autocorrelation time ``tau`` (in samples,
summed over the initial positive part of the autocorrelation) gives ``n_eff = n / (2 tau)`` effectively
independent samples. Bounds are ``K = 4`` standard errors (two-sided Gaussian tail 6e-5).
"""

import numpy as np
import pytest
import torch
from ase import units

from mlff.dynamics import load_deck, run_md, run_relax
from tests.dynamics.decks import TINY, fcc_box, write_deck

N = 32  # atoms
T0 = 500.0  # K, the thermostat tests' target
K = 4.0  # standard errors allowed
POTENTIAL = {"preset": "small", "options": TINY, "species": [79], "dtype": "float64", "seed": 0}
OUTPUT = {"interval": 1000, "log_interval": 1, "plot": None}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tensors this small gain nothing from threads, which on a shared machine only contend."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def effective_samples(x) -> float:
    """``n / (2 tau)``, ``tau = 1/2 + sum_k rho(k)`` summed while the autocorrelation ``rho`` is positive."""
    x = np.asarray(x, dtype=float) - np.mean(x)
    rho = np.correlate(x, x, "full")[len(x) - 1:] / (x @ x)
    end = int(np.argmax(rho < 0)) or len(x)
    return len(x) / (2 * (0.5 + rho[1:end].sum()))


def run(tmp_path, structure: str, md: dict) -> dict:
    deck = write_deck(tmp_path, structure={"system": None, "file": structure}, potential=POTENTIAL,
                      md={"timestep": 5.0, **md}, output=OUTPUT, guard={"min_distance": 0.2})
    summary = run_md(load_deck(deck))
    assert summary.stopped is None, summary.stopped
    return {key: np.asarray(values) for key, values in summary.series.items()}


@pytest.fixture(scope="module")
def cold_box(tmp_path_factory) -> str:
    """The box at a = 5 Å (31 Å^3 per atom) relaxed into a minimum of the random landscape (LBFGS to
    0.05 eV/Å), so that without a thermostat a 50 K start stays cold: in NVE, T settles near 27 K,
    half the kinetic energy going into the potential as in a harmonic solid. (Unrelaxed, the
    landscape alone would heat the box from 50 K to about 420 K.)"""
    tmp_path = tmp_path_factory.mktemp("cold_box")
    relaxed = tmp_path / "relaxed.xyz"
    deck = write_deck(tmp_path, structure={"system": None, "file": fcc_box(tmp_path, "Au", 5.0)},
                      potential=POTENTIAL, relax={"optimizer": "LBFGS", "fmax": 0.05, "steps": 1000},
                      output={"trajectory": str(relaxed), "interval": 1000, "plot": None})
    assert run_relax(load_deck(deck)).converged
    return str(relaxed)


@pytest.mark.parametrize("ensemble, coupling, dof", [
    ("langevin", {"friction": 0.02}, 3 * N),  # friction and noise act on all 3N momenta
    ("nose_hoover", {"tdamp": 50.0}, 3 * N - 3),  # conserves the (zero) total momentum
])
def test_thermostat_reaches_and_holds_its_temperature(tmp_path, cold_box, ensemble, coupling, dof):
    """From 50 K to a 500 K target in 2.5 ps: mean and spread of T over the last 2 ps are canonical.

    sigma = T0 sqrt(2 / N_dof): 72.2 K for Langevin (N_dof = 3N = 96); 73.3 K for Nose-Hoover, whose
    chain enforces <sum p^2/m> = 3N k_B T0 on the 3N - 3 degrees of freedom that move (ASE's T
    divides by 3N, so <T> = T0 still, and std(T)/T0 = sqrt(2/(3N - 3))).
    Mean: |<T> - T0| < K sigma / sqrt(n_eff).
    Spread: the std of n_eff Gaussian samples has a relative standard error 1/sqrt(2 n_eff), so
    |std(T)/sigma - 1| < K / sqrt(2 n_eff): a thermostat that pins T (Berendsen) fails, and so does
    one that lets it swing.
    The first 0.5 ps (100 steps: 20 Langevin kinetic-energy relaxation times 1/(2 friction), 10 tdamp)
    is equilibration; n_eff >= 20 keeps the bounds meaningful. The start must be far: T(0) < 0.2 T0.
    """
    series = run(tmp_path, cold_box, {"ensemble": ensemble, "steps": 500, "temperature": T0,
                                      "initial_temperature": 50.0, **coupling})
    temperature = series["temperature"]
    assert temperature[0] < 0.2 * T0, "the run must start far from the target"
    held = temperature[100:]
    n_eff = effective_samples(held)
    sigma = T0 * np.sqrt(2 / dof)
    measured = f"mean {held.mean():.1f} K, std {held.std():.1f} K (canonical {sigma:.1f} K), n_eff {n_eff:.0f}"
    assert abs(held.mean() - T0) < K * sigma / np.sqrt(n_eff), measured
    assert abs(held.std() / sigma - 1) < K / np.sqrt(2 * n_eff), measured
    assert n_eff >= 20, measured


def test_langevin_heats_at_the_rate_its_friction_sets(tmp_path, cold_box):
    """One 5 fs Langevin step from 50 K, in 8 runs (md.seed 0-7): the kinetic temperature moves
    towards the 500 K target by the fraction the friction sets, with fresh noise.

    Over one step from the relaxed box the forces barely matter (in NVE, T changes by 1 % in 5 fs),
    so each velocity component follows an Ornstein-Uhlenbeck process, v(t) = a v(0) +
    sqrt((1 - a^2) k_B T0 / m) xi with a = exp(-gamma t), which ASE's integrator reproduces to
    O((gamma dt)^3). Given T(0), T(t) has mean a^2 T(0) + (1 - a^2) T0 and variance
    [4 a^2 (1 - a^2) T0 T(0) + 2 (1 - a^2)^2 T0^2] / (3N): 128 ± 18 K for gamma = 0.02/fs. The mean
    over the 8 runs must be within K of its standard error (6 K). A friction read in ASE's time unit
    instead of 1/fs (10 times too small) gives 53 K; noise from a generator that repeats the initial
    velocities' numbers (a second generator with the same seed) adds to them coherently: 228 K.
    """
    a2 = np.exp(-2 * 0.02 * 5.0)
    start, after, variance = [], [], []
    for seed in range(8):
        series = run(tmp_path, cold_box, {"ensemble": "langevin", "friction": 0.02, "steps": 1, "temperature": T0,
                                          "initial_temperature": 50.0, "seed": seed})
        t0, t1 = series["temperature"]
        start.append(t0)
        after.append(t1)
        variance.append((4 * a2 * (1 - a2) * T0 * t0 + 2 * (1 - a2) ** 2 * T0**2) / (3 * N))
    expected = a2 * np.mean(start) + (1 - a2) * T0
    error = np.sqrt(np.sum(variance)) / len(variance)
    assert abs(np.mean(after) - expected) < K * error, \
        f"T after one step {np.mean(after):.1f} K, expected {expected:.1f} ± {K * error:.1f} K"


def test_npt_reaches_its_pressure(tmp_path):
    """From 0.46 GPa (a = 6 Å, 54 Å^3 per atom) to a 0.1 GPa target at 2000 K: the mean
    instantaneous pressure over the second half of a 2 ps run, ideal-gas term included, is the target.

    ASE's IsotropicMTKNPT drives the volume momentum by dp_eps/dt = 3V (P - P_ext) + sum(p^2/m) / N.
    Its time average vanishes in a stationary state, so <V (P - P_ext)> = -k_B T and
    <P> = P_ext - k_B T / <V> (-0.003 GPa here), for any potential with a mechanically stable state
    at P_ext. Here k_B T = 0.17 eV exceeds the untrained network's energy differences and there are
    about 270 Å^3 per atom at the target, so the system is a near-ideal gas (the test requires
    0.5 < <PV>/(N k_B T) < 2; 0.76-1.31 over network seeds 0-2), whose pressure falls as its volume
    grows: stable at any positive pressure. The box must therefore expand to over twice its start.
    The pressure's spread is measured: |<P> - (P_ext - k_B T/<V>)| < K s / sqrt(n_eff), with s its std
    over the second half and n_eff >= 20; the start must be more than ten such bounds from the
    target. The temperature is held as in the Nose-Hoover test.
    """
    target, temperature_k = 0.1, 2000.0
    series = run(tmp_path, fcc_box(tmp_path, "Au", 6.0), {"ensemble": "npt", "steps": 400, "temperature": temperature_k,
                                                            "pressure": target, "tdamp": 50.0, "pdamp": 50.0})
    pressure, volume, temperature = series["pressure"], series["volume"], series["temperature"]
    half = slice(len(pressure) // 2, None)
    kt = units.kB * temperature_k
    n_eff = effective_samples(pressure[half])
    bound = K * pressure[half].std() / np.sqrt(n_eff)
    expected = target - kt / volume[half].mean() / units.GPa
    ideality = np.mean(pressure[half] * units.GPa * volume[half]) / (N * kt)
    measured = (f"mean P {pressure[half].mean():.4f} GPa (expected {expected:.4f} ± {bound:.4f}), start "
                f"{pressure[0]:.3f} GPa, n_eff {n_eff:.0f}, V {volume[0]:.0f} -> {volume[half].mean():.0f} Å^3, "
                f"PV/NkT {ideality:.2f}")
    assert 0.5 < ideality < 2, measured
    assert abs(pressure[half].mean() - expected) < bound, measured
    assert pressure[0] - target > 10 * bound, measured
    assert n_eff >= 20, measured
    assert volume[half].mean() > 2 * volume[0], measured
    sigma = temperature_k * np.sqrt(2 / (3 * N - 3))
    assert abs(temperature[half].mean() - temperature_k) < K * sigma / np.sqrt(effective_samples(temperature[half])), \
        measured


def test_guard_stops_a_runaway_box(tmp_path):
    """The same expanding box as above with a volume limit of 2x: the guard stops the run with a
    reason instead of letting the cell (and the neighbour search) grow without bound."""
    deck = write_deck(tmp_path, structure={"system": None, "file": fcc_box(tmp_path, "Au", 6.0)}, potential=POTENTIAL,
                      md={"timestep": 5.0, "ensemble": "npt", "steps": 400, "temperature": 2000.0, "pressure": 0.1,
                          "tdamp": 50.0, "pdamp": 50.0},
                      output=OUTPUT, guard={"min_distance": 0.2, "max_volume_ratio": 2.0})
    summary = run_md(load_deck(deck))
    assert summary.stopped is not None and summary.stopped.startswith("cell volume changed by a factor 2.")
    assert summary.steps < 400 and summary.series["volume"][-1] <= 2 * summary.series["volume"][0]

"""The PNGs of a run (:mod:`mlff.plotting` style, series saved beside them).

MD: the total energy as E_tot - E_tot(0) in meV/atom, with the fitted drift for NVE; potential and
kinetic fluctuations; temperature with its target and running mean; for NPT, volume and pressure.
Relaxation: energy relative to the start in meV and the largest force against the fmax threshold,
over integer optimizer steps; for cell relaxations, volume and pressure.
"""

from __future__ import annotations

import numpy as np
from matplotlib.ticker import MaxNLocator

from mlff.plotting import figure, save, thinned


def running_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Mean over the last ``window`` values (fewer at the start)."""
    cumulative = np.cumsum(np.insert(np.asarray(values, dtype=float), 0, 0.0))
    index = np.arange(1, len(values) + 1)
    start = np.maximum(index - window, 0)
    return (cumulative[index] - cumulative[start]) / (index - start)


def plot_md(series: dict, path: str, n_atoms: int, ensemble: str, temperature: float, drift: float | None,
            caption: str, pressure: float | None = None) -> None:
    """``temperature``: the thermostat's target, or for NVE the initial velocities' temperature;
    ``drift`` (meV/atom/ps): the run summary's fit, drawn as a line (NVE only)."""
    t = np.asarray(series["time_ps"])
    total = 1000 * (np.asarray(series["total"]) - series["total"][0]) / n_atoms
    potential = 1000 * np.asarray(series["potential"]) / n_atoms
    kinetic = 1000 * np.asarray(series["kinetic"]) / n_atoms
    temp = np.asarray(series["temperature"])
    mean_temp = running_mean(temp, max(1, len(temp) // 20))
    npt = "volume" in series
    fig, axes = figure(5 if npt else 3)
    data = {"time_ps": t, "total_minus_initial_mev_atom": total, "temperature_K": temp,
            "temperature_running_mean_K": mean_temp, "target_temperature_K": temperature}
    tt, tot = thinned(t, total)
    axes[0].plot(tt, tot, color="C0", label="$E_{tot} - E_{tot}(0)$")
    if drift is not None:
        intercept = float(np.mean(total - drift * t))
        data.update(drift_mev_atom_ps=drift, drift_line_mev_atom=intercept + drift * t)
        axes[0].plot(t[[0, -1]], intercept + drift * t[[0, -1]], "k--", lw=0.9,
                     label=f"fit: drift {drift:+.2g} meV/atom/ps")
        axes[0].set_title(f"{ensemble.upper()}: total energy, conserved")
    else:
        axes[0].set_title(f"{ensemble}: total energy (not conserved: the thermostat exchanges energy)")
    axes[0].set_ylabel("meV/atom")
    axes[0].legend(loc="best")
    fluct = {"potential": potential - potential.mean(), "kinetic": kinetic - kinetic.mean()}
    data.update(potential_fluctuation_mev_atom=fluct["potential"], kinetic_fluctuation_mev_atom=fluct["kinetic"])
    for key, color in (("potential", "C1"), ("kinetic", "C2")):
        tt, y = thinned(t, fluct[key])
        axes[1].plot(tt, y, color=color, label=f"$E_{{{key[:3]}}}$ - mean")
    axes[1].set_ylabel("meV/atom")
    axes[1].set_title("potential and kinetic energy fluctuations")
    axes[1].legend(loc="best")
    tt, y, m = thinned(t, temp, mean_temp)
    axes[2].plot(tt, y, color="C3", alpha=0.5, label="temperature")
    axes[2].plot(tt, m, color="C3", label="running mean")
    axes[2].axhline(temperature, color="k", ls="--", lw=0.9,
                    label=f"{'initial' if ensemble == 'nve' else 'target'} {temperature:g} K")
    axes[2].set_ylabel("K")
    axes[2].legend(loc="best")
    if npt:
        data.update(volume_A3=series["volume"], pressure_GPa=series["pressure"], target_pressure_GPa=pressure)
        tt, v, p = thinned(t, series["volume"], series["pressure"])
        axes[3].plot(tt, v, color="C4")
        axes[3].set_ylabel("volume (Å$^3$)")
        axes[4].plot(tt, p, color="C5", alpha=0.7, label="pressure")
        axes[4].axhline(pressure, color="k", ls="--", lw=0.9, label=f"target {pressure:g} GPa")
        axes[4].set_ylabel("GPa")
        axes[4].legend(loc="best")
    axes[-1].set_xlabel("time (ps)")
    save(fig, path, data, caption)


def plot_relax(series: dict, path: str, fmax: float, caption: str) -> None:
    """``fmax``: the convergence threshold (eV/Å), drawn on the force panel."""
    steps = np.asarray(series["step"], dtype=int)
    energy = 1000 * (np.asarray(series["potential"]) - series["potential"][0])
    cell = "volume" in series
    fig, axes = figure(4 if cell else 2)
    axes[0].plot(steps, energy, "o-", ms=2.5, color="C0")
    axes[0].set_ylabel("$E - E(0)$ (meV)")
    axes[0].set_title(f"relaxation: {steps[-1]} steps, {energy[-1]:+.1f} meV")
    axes[1].semilogy(steps, series["fmax"], "o-", ms=2.5, color="C1", label="largest force")
    axes[1].axhline(fmax, color="k", ls="--", lw=0.9, label=f"fmax {fmax:g} eV/Å")
    axes[1].set_ylabel("eV/Å")
    axes[1].legend(loc="best")
    data = {"step": steps, "energy_minus_initial_meV": energy, "fmax_eV_A": series["fmax"], "fmax_threshold": fmax}
    if cell:
        axes[2].plot(steps, series["volume"], "o-", ms=2.5, color="C4")
        axes[2].set_ylabel("volume (Å$^3$)")
        axes[3].plot(steps, series["pressure"], "o-", ms=2.5, color="C5")
        axes[3].axhline(0.0, color="k", ls="--", lw=0.9)
        axes[3].set_ylabel("pressure (GPa)")
        data.update(volume_A3=series["volume"], pressure_GPa=series["pressure"])
    axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[-1].set_xlabel("optimizer step")
    save(fig, path, data, caption)

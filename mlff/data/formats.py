"""Read and write labelled structures: extxyz/xyz, ASE ``.traj``, ASE ``.db``, MD17-style ``.npz``,
fairchem's ``.aselmdb`` and (read only) OC20's ``.lmdb`` of torch-geometric objects (:mod:`mlff.data.lmdb`).

Every structure returned by :func:`read_structures` carries its labels where
:mod:`mlff.data.labels` keeps them (a SinglePointCalculator with ``energy``/``forces``/``stress``),
whatever keys the file used. Other ``info``/``arrays`` entries, cell, pbc, tags and constraints are
kept. No unit conversion is done: files must already be in eV, Å (MD17's kcal/mol are not eV).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Sequence

import ase.db
import ase.io
import numpy as np
from ase import Atoms
from ase.constraints import FixAtoms
from ase.io.extxyz import PROPERTY_NAME_MAP, key_val_dict_to_str
from ase.io.formats import string2index
from ase.io.trajectory import Trajectory

from mlff.data.labels import LABELS, LabelKeys, full_stress, get_labels, set_labels, voigt_stress
from mlff.data.lmdb import PYG_KEYS, AseLmdbSource, PygLmdbSource
from mlff.data.validation import validate_atoms
from mlff.errors import ConfigError, DataError
from mlff.fileio import atomic_path, atomic_write

NPZ_KEYS = LabelKeys(energy="E", forces="F")  # MD17 names, used for .npz when keys are the default


def read_structures(
    path, keys: LabelKeys = LabelKeys(), index=":", require: Sequence[str] = ("energy",), validate=True
) -> list[Atoms]:
    """Read the frames ``index`` (ASE syntax: ``":"``, ``"2"``, ``"-10:"``, int or slice) of ``path``.

    Labels are looked up under ``keys`` in ``atoms.info``, ``atoms.arrays`` and the calculator
    results, in that order. A label listed in ``require`` must be present in every frame.
    Raises :class:`DataError` (or :class:`StructureError` when ``validate``) naming file and frame.
    """
    path = Path(path)
    unknown = sorted(set(require) - set(LABELS))
    if unknown:
        raise ConfigError(f"unknown required label(s) {unknown}; choose from {list(LABELS)}")
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise DataError(f"{path}: unknown extension {path.suffix!r}; supported: {', '.join(_READERS)}")
    keys = default_keys(path, keys)
    structures = []
    try:
        for k, atoms in reader(path, keys, index):
            where = f"frame {k} of {path}"
            canonical_labels(atoms, keys, require, where)
            if validate:
                validate_atoms(atoms, where=where)
            structures.append(atoms)
    except UnicodeDecodeError as err:
        raise DataError(f"{path} is not a text file: {err}") from None
    return structures


def default_keys(path: Path, keys: LabelKeys) -> LabelKeys:
    """The label keys of formats with their own names (MD17 ``.npz``, OC20 ``.lmdb``) when none are given."""
    if keys != LabelKeys():
        return keys
    return {".npz": NPZ_KEYS, ".lmdb": PYG_KEYS}.get(Path(path).suffix.lower(), keys)


def write_structures(path, structures: Sequence[Atoms]) -> None:
    """Write ``structures`` with their labels and ``info`` atomically; the format follows the suffix.

    extxyz/xyz (full float precision), ``.traj`` and ``.db`` keep everything :func:`read_structures`
    reads; ``.npz`` holds positions, numbers, labels, cell and pbc of same-composition frames only.
    """
    path = Path(path)
    writer = _WRITERS.get(path.suffix.lower())
    if writer is None:
        raise DataError(f"{path}: cannot write extension {path.suffix!r}; supported: {', '.join(_WRITERS)}")
    # fresh single points: ASE's own writers drop results of a calculator whose atoms moved since
    writer(path, [set_labels(atoms.copy(), **get_labels(atoms)) for atoms in structures])


# ---------------------------------------------------------------------------------------- labels
def canonical_labels(atoms: Atoms, keys: LabelKeys, require, where: str) -> None:
    """Move the labels found under ``keys`` into a SinglePointCalculator, checking their shapes."""
    results = dict(getattr(atoms.calc, "results", None) or {})
    sources = (atoms.info, atoms.arrays, results)
    available = sorted({*atoms.info, *atoms.arrays, *results} - {"numbers", "positions"})
    labels = {}
    for name in LABELS:
        key = getattr(keys, name)
        source = next((s for s in sources if s.get(key) is not None), None)
        if source is not None:
            labels[name] = _label_value(name, key, source.pop(key), len(atoms), where)
        elif name in require:
            raise DataError(
                f"{where} has no {name} under key {key!r}; available: {', '.join(available) or 'nothing'}"
            )
    set_labels(atoms, **labels)


def _label_value(name: str, key: str, raw, natoms: int, where: str) -> np.ndarray:
    """``raw`` as a float array of the shape label ``name`` needs, or a DataError saying why not."""
    what = f"{where}: {name} under key {key!r}"
    try:
        value = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{what} is not numeric: {str(raw)[:60]!r}") from None
    ok = {"energy": value.size == 1, "forces": value.shape == (natoms, 3), "stress": value.size in (6, 9)}
    if not ok[name]:
        want = {"energy": "a single number", "forces": f"({natoms}, 3)", "stress": "6 or 9 components"}
        raise DataError(f"{what} has shape {value.shape}, expected {want[name]}")
    if not np.isfinite(value).all():
        raise DataError(f"{what} contains NaN or infinity")
    return value.reshape(()) if name == "energy" else value


def _frames(index, n: int, path: Path) -> Sequence[int]:
    """The frame numbers selected by ``index`` among ``n`` frames."""
    index = string2index(index) if isinstance(index, str) else index
    if isinstance(index, slice):
        return range(n)[index]
    if not -n <= index < n:
        raise DataError(f"{path} has {n} frames; frame {index} does not exist")
    return [range(n)[index]]


# ---------------------------------------------------------------------------------------- extxyz
def _scan_xyz(path: Path) -> list[tuple[int, int]]:
    """(first line, atom count) of every frame; raises if the file is cut or malformed between frames."""
    frames, next_header, blank, lineno = [], 1, 0, 0
    with open(path) as fh:
        for lineno, line in enumerate(fh, 1):
            if lineno < next_header:
                continue
            if not line.strip():
                blank = blank or lineno
                continue
            if blank:
                raise DataError(f"line {blank} of {path}: blank line before frame {len(frames)}")
            if not line.strip().isdecimal():
                raise DataError(
                    f"line {lineno} of {path}: expected the atom count of frame {len(frames)}, "
                    f"got {line.strip()[:40]!r}"
                )
            natoms = int(line)
            frames.append((lineno, natoms))
            next_header = lineno + natoms + 2
    if lineno < next_header - 1:
        start, natoms = frames[-1]
        raise DataError(
            f"{path} is truncated: frame {len(frames) - 1} (line {start}) declares {natoms} atoms "
            f"and needs lines {start}-{next_header - 1}, but the file ends at line {lineno}"
        )
    return frames


def _read_xyz(path: Path, keys: LabelKeys, index) -> Iterator[tuple[int, Atoms]]:
    frames = _scan_xyz(path)
    wanted = _frames(index, len(frames), path)
    if not wanted:
        return
    lo, hi = min(wanted), max(wanted)
    parsed = {}
    reader = ase.io.iread(path, index=slice(lo, hi + 1), format="extxyz")
    for k in range(lo, hi + 1):
        try:
            atoms = next(reader)
        except Exception as err:  # noqa: BLE001 - any parse failure is reported with its location
            start, natoms = frames[k]
            raise DataError(
                f"frame {k} of {path} (lines {start}-{start + natoms + 1}) cannot be parsed: {err}"
            ) from None
        if k in wanted:
            parsed[k] = atoms
    yield from ((k, parsed[k]) for k in wanted)


_XYZ_TYPES = {  # dtype kind -> (extxyz property type, formatter); floats keep every digit
    "f": ("R", lambda x: repr(float(x))), "i": ("I", str), "u": ("I", str),
    "b": ("L", lambda x: "T" if x else "F"), "U": ("S", str), "O": ("S", str),
}


def _xyz_frame(atoms: Atoms) -> str:
    labels = get_labels(atoms)
    columns = {"species": np.array(atoms.get_chemical_symbols()), "pos": atoms.positions}
    for name, value in atoms.arrays.items():
        if name not in ("numbers", "positions"):
            columns[PROPERTY_NAME_MAP.get(name, name)] = value
    if "forces" in labels:
        columns["forces"] = labels["forces"]
    fixed = [c.get_indices() for c in atoms.constraints if isinstance(c, FixAtoms)]
    if fixed:
        columns["move_mask"] = ~np.isin(np.arange(len(atoms)), np.concatenate(fixed))
    properties, cells = [], []
    for name, value in columns.items():
        value = np.asarray(value).reshape(len(atoms), -1)
        if value.dtype.kind not in _XYZ_TYPES:
            raise DataError(f"array {name!r} has dtype {value.dtype}, which extxyz cannot store")
        kind, fmt = _XYZ_TYPES[value.dtype.kind]
        properties.append(f"{name}:{kind}:{value.shape[1]}")
        cells.append([" ".join(fmt(x) for x in row) for row in value])
    info = {k: v for k, v in atoms.info.items() if k not in ("Lattice", "Properties")}
    if "energy" in labels:
        info["energy"] = float(labels["energy"])
    if "stress" in labels:
        info["stress"] = full_stress(labels["stress"])
    info["pbc"] = atoms.pbc  # the labels and pbc override stale copies in info
    lattice = " ".join(repr(float(x)) for x in atoms.cell.array.ravel())
    comment = f'Lattice="{lattice}" ' if atoms.cell.any() else ""
    comment += f"Properties={':'.join(properties)} "
    rows = "".join(" ".join(parts) + "\n" for parts in zip(*cells))
    return f"{len(atoms)}\n{comment}{key_val_dict_to_str(info)}\n{rows}"


def _write_xyz(path: Path, structures: list[Atoms]) -> None:
    with atomic_write(path) as fh:
        fh.writelines(_xyz_frame(atoms) for atoms in structures)


# ---------------------------------------------------------------------------------------- traj, db
def _read_traj(path: Path, keys: LabelKeys, index) -> Iterator[tuple[int, Atoms]]:
    try:
        traj = Trajectory(str(path))
    except Exception as err:  # noqa: BLE001
        raise DataError(f"{path} is not a readable ASE trajectory: {err}") from None
    with traj:
        for k in _frames(index, len(traj), path):
            try:
                atoms = traj[k]
            except Exception as err:  # noqa: BLE001
                raise DataError(f"frame {k} of {path} cannot be read (corrupt?): {err}") from None
            yield k, atoms


def _write_traj(path: Path, structures: list[Atoms]) -> None:
    with atomic_path(path) as tmp, Trajectory(str(tmp), "w") as traj:
        for atoms in structures:
            traj.write(atoms)


def _read_db(path: Path, keys: LabelKeys, index) -> Iterator[tuple[int, Atoms]]:
    """Rows in id order; ``key_value_pairs`` and ``data`` are merged into ``info``."""
    try:
        db = ase.db.connect(str(path), type="db")
        ids = [row.id for row in db.select(include_data=False)]
    except Exception as err:  # noqa: BLE001
        raise DataError(f"{path} is not a readable ASE database: {err}") from None
    for k in _frames(index, len(ids), path):
        try:
            row = db.get(id=ids[k])
            atoms = row.toatoms()
        except Exception as err:  # noqa: BLE001
            raise DataError(f"frame {k} of {path} (row id {ids[k]}) cannot be read: {err}") from None
        atoms.info.update(row.key_value_pairs)
        atoms.info.update(row.data)
        yield k, atoms


def _write_db(path: Path, structures: list[Atoms], kind: str = "db") -> None:
    """One row per structure; ``info`` goes to the row's ``data`` (no restrictions on keys/values)."""
    with atomic_path(path) as tmp:
        try:
            with ase.db.connect(str(tmp), type=kind, append=False, use_lock_file=False) as db:
                for atoms in structures:
                    db.write(atoms, data=_plain(atoms.info))
        finally:
            Path(f"{tmp}-lock").unlink(missing_ok=True)  # LMDB's lock file, named after the temporary file


def _read_lmdb(source):
    def read(path: Path, keys: LabelKeys, index) -> Iterator[tuple[int, Atoms]]:
        frames = source(path)
        try:
            for k in _frames(index, len(frames), path):
                yield k, frames.read(k)
        finally:
            frames.close()
    return read


def _write_aselmdb(path: Path, structures: list[Atoms]) -> None:
    AseLmdbSource.require()
    _write_db(path, structures, kind="aselmdb")


def _plain(value):
    """``value`` with numpy scalars replaced by Python ones (ASE's database encoder rejects them)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    return value.item() if isinstance(value, np.generic) else value


# ---------------------------------------------------------------------------------------- npz
def _read_npz(path: Path, keys: LabelKeys, index) -> Iterator[tuple[int, Atoms]]:
    """MD17-style arrays: positions ``R`` [F, N, 3], numbers ``z`` [N]; labels, cell, pbc per frame."""
    try:
        with np.load(path) as npz:
            data = {k: npz[k] for k in npz.files}
    except Exception as err:  # noqa: BLE001
        raise DataError(f"{path} is not a readable .npz file: {err}") from None
    if "R" not in data or "z" not in data:
        raise DataError(f"{path}: an .npz needs positions 'R' and atomic numbers 'z'; found {sorted(data)}")
    positions, numbers = data["R"], data["z"].astype(int).reshape(-1)
    if positions.ndim != 3 or positions.shape[1:] != (len(numbers), 3):
        raise DataError(f"{path}: 'R' has shape {positions.shape}, expected (frames, {len(numbers)}, 3)")
    n = len(positions)
    for key in ({getattr(keys, name) for name in LABELS} | {"cell", "pbc"}) & set(data):
        if data[key].shape[:1] != (n,):
            raise DataError(f"{path}: {key!r} has shape {data[key].shape}, expected {n} frames")
    # every other per-frame array (labels included) goes to info, where the labels are looked up
    per_frame = [k for k, v in data.items() if k not in ("R", "z", "cell", "pbc") and v.shape[:1] == (n,)]
    cells, pbcs = data.get("cell", [None] * n), data.get("pbc", [False] * n)
    for k in _frames(index, n, path):
        atoms = Atoms(numbers=numbers, positions=positions[k], cell=cells[k], pbc=pbcs[k])
        atoms.info.update({key: data[key][k] for key in per_frame})
        yield k, atoms


def _write_npz(path: Path, structures: list[Atoms]) -> None:
    if not structures:
        raise DataError(f"{path}: an .npz file needs at least one structure")
    numbers = structures[0].numbers
    for k, atoms in enumerate(structures):
        if not np.array_equal(atoms.numbers, numbers):
            raise DataError(f"{path}: structure {k} has a different composition; .npz needs the same atoms")
    stack = lambda get: np.stack([get(a) for a in structures])  # noqa: E731
    out = {"R": stack(lambda a: a.positions), "z": numbers, "cell": stack(lambda a: a.cell.array),
           "pbc": stack(lambda a: a.pbc)}
    labels = [get_labels(a) for a in structures]
    for name in LABELS:
        have = [name in found for found in labels]
        if any(have) and not all(have):
            raise DataError(f"{path}: structure {have.index(False)} has no {name}; .npz needs it everywhere")
        if all(have):
            as_array = voigt_stress if name == "stress" else np.asarray
            out[getattr(NPZ_KEYS, name)] = np.stack([as_array(found[name]) for found in labels])
    with atomic_write(path, "wb") as fh:
        np.savez(fh, **out)


_READERS = {".extxyz": _read_xyz, ".xyz": _read_xyz, ".traj": _read_traj, ".db": _read_db, ".npz": _read_npz,
            ".aselmdb": _read_lmdb(AseLmdbSource), ".lmdb": _read_lmdb(PygLmdbSource)}
_WRITERS = {".extxyz": _write_xyz, ".xyz": _write_xyz, ".traj": _write_traj, ".db": _write_db,
            ".npz": _write_npz, ".aselmdb": _write_aselmdb}

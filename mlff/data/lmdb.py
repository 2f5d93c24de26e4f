"""Random access to the LMDB files fairchem distributes, one frame at a time.

* ``.aselmdb``: an ASE database over LMDB (the ``aselmdb`` backend of ``ase-db-backends``), in which
  fairchem ships OC20, OMat24, OMol and ODAC. Labels are in the row's calculator results; its
  ``key_value_pairs`` and ``data`` (system ids, reference energies...) go into ``info``; tags and
  ``FixAtoms`` constraints are kept.
* ``.lmdb``: OC20's older S2EF/IS2RE files, one pickled torch-geometric ``Data`` per key ``b"0"``,
  ``b"1"``... (and ``b"length"``). Their fields: ``pos``, ``atomic_numbers``, ``cell`` [1, 3, 3],
  ``tags``, ``fixed``, the energy ``y`` (S2EF) or ``y_init``/``y_relaxed`` (IS2RE), the forces
  ``force``, ``pos_relaxed``, ``sid``, ``fid``, ``natoms``. Scalars go into ``info`` and per-atom
  arrays into ``arrays`` under their own names, so the labels are looked up with
  :data:`PYG_KEYS` (or the keys a config gives). OC20 cells are periodic in x, y and z.

A source reads frames as they are stored; :mod:`mlff.data.formats` turns them into labelled,
validated structures. Every failure is a :class:`~mlff.errors.DataError` naming the file and frame.
"""

from __future__ import annotations

import atexit
import os
import pickle
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.constraints import FixAtoms

from mlff.data.labels import LabelKeys
from mlff.errors import DataError

PYG_KEYS = LabelKeys(energy="y", forces="force", stress="stress")  # OC20 S2EF names
PYG_REQUIRED = ("pos", "atomic_numbers")  # without these a Data object is not a structure
_PYG_SPECIAL = ("pos", "atomic_numbers", "cell", "pbc", "tags", "fixed", "natoms")
_PYG_GRAPH = ("edge_index", "cell_offsets", "distances", "offsets", "neighbors")  # the file's own graph: not read


_OPEN: dict[tuple, object] = {}


@atexit.register
def _close_all() -> None:
    """Close this process's handles before the interpreter tears lmdb down under them."""
    for key, handle in list(_OPEN.items()):
        if key[0] == os.getpid():
            handle.close()
        del _OPEN[key]


def _shared(path: Path, opener):
    """One open handle per file and process: LMDB refuses to open an environment twice in a process.
    The key includes the file's identity, so a file replaced on disk is opened afresh."""
    st = path.stat()
    key = (os.getpid(), opener.__name__, st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
    if key not in _OPEN:
        _OPEN[key] = opener(path)
    return _OPEN[key]


def _lmdb():
    try:
        import lmdb
    except ImportError:
        raise DataError("reading LMDB files needs the lmdb package: pip install 'mlff[oc20]'") from None
    return lmdb


class AseLmdbSource:
    """The rows of an ``.aselmdb`` file in id order."""

    shareable = False  # an LMDB environment must not cross a fork

    def __init__(self, path):
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(f"{self.path}: no such file")
        self.require()
        lmdb = _lmdb()
        from ase.db import connect

        def aselmdb(path):
            return connect(str(path), type="aselmdb", readonly=True, use_lock_file=False)

        try:
            self.db = _shared(self.path, aselmdb)
            self.ids = list(self.db.ids)
        except (lmdb.Error, OSError, ValueError, KeyError) as err:
            raise DataError(f"{self.path} is not a readable ASE LMDB database: {err}") from None

    @staticmethod
    def require() -> None:
        """A clear error when ``ase-db-backends`` (which ``ase.db.connect`` imports for ``aselmdb``) is missing."""
        try:
            import ase_db_backends  # noqa: F401
        except ImportError:
            raise DataError(".aselmdb files need ase-db-backends: pip install 'mlff[oc20]'") from None

    def __len__(self) -> int:
        return len(self.ids)

    def read(self, k: int) -> Atoms:
        try:
            row = self.db._get_row(self.ids[k])  # the backend's direct lookup by id (no scan)
            atoms = row.toatoms()
        except Exception as err:  # noqa: BLE001 - a corrupt page, bad compression or JSON
            raise DataError(f"frame {k} of {self.path} (row id {self.ids[k]}) cannot be read: "
                            f"{type(err).__name__}: {err}") from None
        atoms.info.update(row.key_value_pairs)
        atoms.info.update(row.data)
        return atoms

    def close(self) -> None:
        """Nothing to do: the handle is shared by every reader of the file in this process."""


class PygLmdbSource:
    """The pickled torch-geometric ``Data`` objects of an OC20 S2EF/IS2RE LMDB, in key order."""

    shareable = False  # an LMDB environment must not cross a fork

    def __init__(self, path):
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(f"{self.path}: no such file (OC20 LMDBs are single files, subdir=False)")
        lmdb = _lmdb()
        def environment(path):
            return lmdb.open(str(path), subdir=False, readonly=True, lock=False, readahead=False, meminit=False,
                             max_readers=64)

        try:
            self.env = _shared(self.path, environment)
            with self.env.begin() as txn:
                length = txn.get(b"length")
                if length is not None:
                    self.keys = [f"{j}".encode("ascii") for j in range(int(pickle.loads(length)))]
                else:  # older files: every key is a frame
                    self.keys = sorted((key for key in txn.cursor().iternext(values=False)), key=_frame_number)
        except (lmdb.Error, pickle.UnpicklingError, ValueError) as err:
            raise DataError(f"{self.path} is not a readable OC20 LMDB: {type(err).__name__}: {err}") from None

    def __len__(self) -> int:
        return len(self.keys)

    def read(self, k: int) -> Atoms:
        key = self.keys[k].decode()
        where = f"frame {k} of {self.path} (key {key!r})"
        try:
            with self.env.begin() as txn:
                raw = txn.get(self.keys[k])
            if raw is None:
                raise DataError(f"{where}: the key is listed (length) but not stored")
            fields = data_fields(pickle.loads(raw), where)
        except DataError:
            raise
        except Exception as err:  # noqa: BLE001 - a corrupt page or pickle
            raise DataError(f"{where} cannot be read: {type(err).__name__}: {err}") from None
        return pyg_atoms(fields, where)

    def close(self) -> None:
        """Nothing to do: the handle is shared by every reader of the file in this process."""


def _frame_number(key: bytes):
    text = key.decode("ascii", "replace")
    return (0, int(text), "") if text.isdecimal() else (1, 0, text)


def data_fields(data, where: str) -> dict:
    """The fields of a torch-geometric ``Data`` of any version (or of a plain dict) as numpy values."""
    if isinstance(data, dict):
        fields = data
    elif "_store" in getattr(data, "__dict__", {}):  # torch-geometric >= 2
        fields = data.to_dict()
    elif hasattr(data, "__dict__"):  # torch-geometric 1.x pickles keep the fields as attributes
        fields = {k: v for k, v in data.__dict__.items() if not k.startswith("_")}
    else:
        raise DataError(f"{where}: unknown schema: a {type(data).__name__}, not a torch-geometric Data or a dict")
    out = {}
    for name, value in fields.items():
        if value is None:
            continue
        out[name] = value.detach().cpu().numpy() if hasattr(value, "detach") else value
    return out


def pyg_atoms(fields: dict, where: str) -> Atoms:
    """A structure from OC20-style fields (see the module docstring); ``where`` names it in errors."""
    missing = [name for name in PYG_REQUIRED if name not in fields]
    if missing:
        raise DataError(f"{where}: unknown schema, no {' or '.join(repr(m) for m in missing)}; "
                        f"fields: {', '.join(sorted(fields)) or 'none'}")
    numbers = np.asarray(fields["atomic_numbers"]).reshape(-1)
    if not np.all(numbers == np.round(numbers)):
        raise DataError(f"{where}: 'atomic_numbers' are not whole numbers")
    n = len(numbers)
    positions = np.asarray(fields["pos"], dtype=np.float64)
    if positions.shape != (n, 3):
        raise DataError(f"{where}: 'pos' has shape {positions.shape}, expected ({n}, 3)")
    cell = fields.get("cell")
    pbc = np.asarray(fields["pbc"], dtype=bool).reshape(3) if "pbc" in fields else cell is not None
    atoms = Atoms(numbers=numbers.astype(int), positions=positions,
                  cell=None if cell is None else np.asarray(cell, dtype=np.float64).reshape(3, 3), pbc=pbc)
    for name in ("tags", "fixed"):
        if name in fields:
            value = np.asarray(fields[name]).reshape(-1)
            if len(value) != n:
                raise DataError(f"{where}: {name!r} has {len(value)} entries for {n} atoms")
            if name == "tags":
                atoms.set_tags(value.astype(int))
            else:
                atoms.set_constraint(FixAtoms(mask=value.astype(bool)))
    for name, value in fields.items():
        if name in _PYG_SPECIAL or name in _PYG_GRAPH:
            continue
        array = np.asarray(value)
        if array.ndim >= 2 and array.shape[0] == 1 and n > 1:  # per structure, e.g. stress [1, 3, 3]
            atoms.info[name] = array[0]
        elif array.ndim >= 1 and array.shape[0] == n and array.size > 1:
            atoms.arrays[name] = array.astype(np.float64) if array.dtype.kind == "f" else array
        elif array.size == 1:
            atoms.info[name] = array.item()
    return atoms

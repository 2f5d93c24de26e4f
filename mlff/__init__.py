"""mlff: machine-learned force fields with conservative EquiformerV2 and EST potentials."""

__version__ = "0.1.0"


def __getattr__(name):
    """Lazy access to the ASE-facing API (``mlff.load``, ``mlff.MLFFCalculator``)."""
    if name in ("load", "MLFFCalculator"):
        from mlff import calculator

        return getattr(calculator, name)
    raise AttributeError(f"module 'mlff' has no attribute {name!r}")

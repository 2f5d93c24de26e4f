"""Exception types shared across mlff.

Every error that bad user input can trigger is one of these, so callers (and the CLI) can catch
them and print a one-line message that names the file, frame, key or element at fault.
"""


class MLFFError(Exception):
    """Base class for all errors raised on bad input to mlff."""


class StructureError(MLFFError, ValueError):
    """A structure is unusable: empty, NaN positions, singular periodic cell, overlapping atoms..."""


class DataError(MLFFError, ValueError):
    """A data file cannot be read or lacks a requested label."""


class ConfigError(MLFFError, ValueError):
    """A configuration (YAML, CLI arguments) has an unknown key or a bad value."""

"""The ``mlff`` command line: one entry point, subcommands contributed by provider modules.

A provider module defines ``COMMANDS``, a list of :class:`Command`. Each command names its place in
the tree by a path of words (``("data", "generate", "md17")``), adds its own options and runs from
the parsed namespace. To add a subcommand, write a provider module and list it in ``PROVIDERS``;
the groups along a path (``data``, ``data generate``) are created on first use and described by
``GROUPS``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

from mlff.errors import MLFFError
from mlff.kernels import requested_backend
from mlff.runtime import configure_allocator


@dataclass(frozen=True)
class Command:
    """One leaf of the command tree: its path, one-line help, option builder and runner."""

    path: tuple[str, ...]
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


PROVIDERS = ("mlff.data.cli", "mlff.data.generate.cli", "mlff.dynamics.cli", "mlff.train.cli", "mlff.bench.cli",
             "mlff.lammps.cli")
GROUPS = {
    (): "Machine-learned force fields: data, training, evaluation, MD and benchmarks.",
    ("data",): "reference data: generate, inspect and split datasets",
    ("data", "generate"): "generate labelled reference data (xTB molecules, EMT slabs)",
    ("bench",): "benchmarks: neighbour lists, model speed",
    ("export",): "write a model in the form another engine loads",
}


def build_parser() -> argparse.ArgumentParser:
    """The full parser, with every provider's commands registered."""
    parser = argparse.ArgumentParser(prog="mlff", description=GROUPS[()])
    groups = {(): parser.add_subparsers(title="commands", dest="command", metavar="COMMAND", required=True)}
    for module in PROVIDERS:
        for command in importlib.import_module(module).COMMANDS:
            *parents, name = command.path
            sub = _group(groups, tuple(parents)).add_parser(name, help=command.help, description=command.help)
            command.add_arguments(sub)
            sub.set_defaults(run=command.run)
    return parser


def _group(groups: dict, path: tuple[str, ...]):
    """The subparsers action for the group at ``path``, creating it (and its parents) if needed."""
    if path not in groups:
        text = GROUPS.get(path, "")
        parser = _group(groups, path[:-1]).add_parser(path[-1], help=text, description=text)
        groups[path] = parser.add_subparsers(
            title="commands", dest="_".join(("command", *path)), metavar="COMMAND", required=True
        )
    return groups[path]


class _ToStream(logging.Handler):
    """Writes records to the stream that is ``sys.stdout``/``sys.stderr`` at the time of writing
    (so that redirections and pytest's capture see them)."""

    def __init__(self, stream: str, prefix: str, levels: tuple[int, int]):
        super().__init__()
        self.stream, self.prefix, self.levels = stream, prefix, levels

    def emit(self, record: logging.LogRecord) -> None:
        if self.levels[0] <= record.levelno < self.levels[1]:
            print(f"{self.prefix}{' '.join(record.getMessage().split()) if self.prefix else record.getMessage()}",
                  file=getattr(sys, self.stream), flush=True)


def configure_logging() -> None:
    """The library logs to the ``mlff`` logger and prints nothing itself; the command line shows
    INFO records on stdout as they are, and warnings and errors on stderr as one line each."""
    logger = logging.getLogger("mlff")
    logger.handlers = [h for h in logger.handlers if not isinstance(h, _ToStream)]
    logger.addHandler(_ToStream("stdout", "", (logging.INFO, logging.WARNING)))
    logger.addHandler(_ToStream("stderr", "mlff: warning: ", (logging.WARNING, logging.ERROR)))
    logger.addHandler(_ToStream("stderr", "mlff: error: ", (logging.ERROR, logging.CRITICAL + 1)))
    logger.setLevel(logging.INFO)
    logger.propagate = False


def main(argv: list[str] | None = None) -> int:
    """Run ``mlff`` with ``argv`` (default ``sys.argv[1:]``); return the exit code.

    Errors from bad input (:class:`~mlff.errors.MLFFError`) and from the file system (:class:`OSError`) are printed
    as one line, ``mlff: error: ...``, with exit code 2 and no traceback; so are usage errors.
    """
    configure_logging()
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2), already printed by argparse
        return int(exc.code or 0)
    configure_allocator(low_memory=getattr(args, "low_memory", False))  # the flag of the commands that run MD
    try:
        requested_backend()  # a bad MLFF_KERNELS fails here, before any work
        return int(args.run(args) or 0)
    except BrokenPipeError:  # the reader went away (``mlff info ... | head``): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as exc:  # missing file, permission denied, disk full...
        message = f"{exc.strerror}: {exc.filename}" if exc.filename else str(exc)
    except MLFFError as exc:
        message = str(exc)
    print(f"mlff: error: {' '.join(message.split())}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())

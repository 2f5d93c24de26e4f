"""The output contract of the peer runner scripts: exactly one line of JSON on stdout.

Standalone (imports nothing from mlff): the runners import it as a sibling module from their own
folder, under the peer environment's Python.
"""

from __future__ import annotations

import json
import os
import sys
import traceback


def run_with_json_line(run, args, name: str) -> int:
    """``run(args)`` with stdout kept for its result, printed as one JSON line; 0, or 1 on failure.

    Anything else that writes to fd 1 while it runs (Python or C) goes to stderr. On failure the
    traceback and a last line ``<name>: error: <type>: <message>`` go to stderr.
    """
    sys.stdout.flush()
    json_out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        result = run(args)
    except Exception as error:  # noqa: BLE001 - report any failure on stderr
        traceback.print_exc(file=sys.stderr)
        print(f"{name}: error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    json_out.write(json.dumps(result) + "\n")
    json_out.flush()
    return 0

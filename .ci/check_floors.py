"""Check that .ci/lowest.txt pins every dependency pyproject.toml declares, each to its declared floor.

Run by .ci/run before the lowest-versions stage, so that a floor raised in one file and not the other
fails CI instead of leaving a floor untested. Exit status 1 and one line per mismatch on failure.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[A-Za-z0-9,._ -]*\])?\s*>=\s*([0-9][0-9.]*)\s*(;.*)?$")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def main() -> int:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        declared += extra
    pins: dict[str, str] = {}
    for line in (ROOT / ".ci" / "lowest.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[canonical(name)] = version.strip()
    problems = []
    floors = {}
    for requirement in declared:
        match = REQUIREMENT.match(requirement)
        if not match:
            problems.append(f"pyproject.toml: {requirement!r} has no plain '>=' floor to test")
            continue
        name, floor = canonical(match[1]), match[2]
        floors[name] = floor
        pinned = pins.get(name)
        if pinned is None:
            problems.append(f".ci/lowest.txt: no pin for {name} (pyproject.toml: >={floor})")
        elif [int(p) for p in pinned.split(".")] != [int(p) for p in floor.split(".")] + [0] * (
            len(pinned.split(".")) - len(floor.split("."))
        ):
            problems.append(f".ci/lowest.txt: {name}=={pinned}, but pyproject.toml's floor is >={floor}")
    for name in sorted(set(pins) - set(floors)):
        problems.append(f".ci/lowest.txt: {name} is pinned but pyproject.toml does not declare it")
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

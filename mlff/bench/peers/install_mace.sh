#!/usr/bin/env bash
# Build the MACE peer environment for mlff's peer benchmarks: DIR/mace, a virtual environment with
# torch 2.13.0 (installed first, on its own) and mace-torch, then a smoke test of mace_peer.py.
#
#   bash mlff/bench/peers/install_mace.sh DIR        # e.g. DIR=.peers -> .peers/mace/bin/python
#
# An existing DIR/mace is removed first (the environment is built from scratch every time).
# Environment variables:
#   PYTHON         interpreter for the venv (default python3; must match the torch wheel, cp311 here)
#   TORCH_VERSION  default 2.13.0     MACE_VERSION  default 0.3.16 (the version this was tested with)
#
# torch is pinned by a constraints file for every later pip call, so installing mace-torch can
# never replace it (on plain PyPI another torch would be a multi-GB CUDA build).  Where pip's
# find-links holds a CPU wheel (torch-2.13.0+cpu here), `pip install torch==2.13.0` takes it.
#
# e3nn: mace-torch pins e3nn==0.4.4, whose import torch.load()s a pickle that torch >= 2.6 refuses
# with the new weights_only default.  No patch is needed: mace/__init__.py sets
# TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1, so importing mace before e3nn (as mace_peer.py does) works.
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 DIR   (creates DIR/mace)" >&2
    exit 2
fi
PYTHON=${PYTHON:-python3}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
MACE_VERSION=${MACE_VERSION:-0.3.16}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mkdir -p "$1"
VENV=$(cd "$1" && pwd)/mace

if [ -e "$VENV" ]; then
    echo "install_mace: removing the old $VENV" >&2
    rm -rf "$VENV"
fi
echo "install_mace: creating $VENV with $("$PYTHON" --version 2>&1)" >&2
"$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip)

echo "install_mace: torch==$TORCH_VERSION" >&2
"${PIP[@]}" install "torch==$TORCH_VERSION" >&2
TORCH_INSTALLED=$("$VENV/bin/python" -c 'import torch; print(torch.__version__)')
TORCH_CUDA=$("$VENV/bin/python" -c 'import torch; print(torch.version.cuda)')
echo "install_mace: got torch $TORCH_INSTALLED (CUDA: $TORCH_CUDA)" >&2
if [ "$TORCH_CUDA" != "None" ]; then
    echo "install_mace: warning: this torch is a CUDA build (no local CPU wheel found); it works on CPU too" >&2
fi

CONSTRAINTS="$VENV/peer-constraints.txt"
echo "torch==$TORCH_INSTALLED" > "$CONSTRAINTS"
echo "install_mace: mace-torch==$MACE_VERSION (torch held at $TORCH_INSTALLED)" >&2
"${PIP[@]}" install -c "$CONSTRAINTS" "mace-torch==$MACE_VERSION" >&2

AFTER=$("$VENV/bin/python" -c 'import torch; print(torch.__version__)')
if [ "$AFTER" != "$TORCH_INSTALLED" ]; then
    echo "install_mace: error: torch changed from $TORCH_INSTALLED to $AFTER" >&2
    exit 1
fi
"$VENV/bin/python" -m pip freeze > "$VENV/peer-freeze.txt"

echo "install_mace: smoke test" >&2
SMOKE=$(mktemp -d)
trap 'rm -rf "$SMOKE"' EXIT
"$VENV/bin/python" -c "import ase.build, ase.io, sys; ase.io.write(sys.argv[1], ase.build.molecule('CH3CH2OH'), format='extxyz')" \
    "$SMOKE/ethanol.xyz"
"$VENV/bin/python" "$HERE/mace_peer.py" --structure "$SMOKE/ethanol.xyz" --threads 1 --min-time 0 \
    > "$SMOKE/out.json" 2> "$SMOKE/err.txt" || { cat "$SMOKE/err.txt" >&2; echo "install_mace: smoke test failed" >&2; exit 1; }
echo "install_mace: smoke test: $(cat "$SMOKE/out.json")" >&2
echo "install_mace: done: $VENV/bin/python (packages in $VENV/peer-freeze.txt)" >&2

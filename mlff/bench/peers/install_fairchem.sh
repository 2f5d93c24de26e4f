#!/usr/bin/env bash
# Build DIR/fairchem: a virtual environment in which fairchem_peer.py times fairchem-core 1.10's
# EquiformerV2 on the CPU build of torch.
#
#   bash mlff/bench/peers/install_fairchem.sh DIR        # e.g. .peers (then DIR/fairchem/bin/python)
#
# Steps, each checked:
#   1. a fresh venv (an existing DIR/fairchem venv is replaced) from $PYTHON (default python3; fairchem
#      1.10 needs Python 3.9-3.12);
#   2. torch==$TORCH_VERSION (2.13.0) alone, first, refusing any plan that would bring CUDA packages;
#   3. fairchem-core==1.10.0 with --no-deps (it pins torch~=2.4, a multi-GB CUDA build: never let
#      pip resolve it);
#   4. the light packages that importing and running EquiformerV2 needs, one pip call, with torch
#      held at the installed build by a constraints file;
#   5. the pure-PyTorch torch_scatter stand-in (torch_scatter_standin/ next to this script), copied
#      into site-packages: fairchem imports torch_scatter at module level, and torch-scatter has no
#      wheel for this torch;
#   6. a check that torch is still the build of step 2, and a smoke run of fairchem_peer.py.
set -euo pipefail

usage() { echo "usage: $0 DIR   (creates DIR/fairchem)" >&2; exit 2; }
[ $# -eq 1 ] || usage
[ -n "$1" ] || usage

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${PYTHON:-python3}"
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"
FAIRCHEM_VERSION="1.10.0"
# Step 4. lmdb, huggingface-hub and pydantic are imported (not used) on the way to the model;
# e3nn, torch-geometric, ase, numpy, pyyaml, tqdm are used. Versions as first validated.
LIGHT_DEPS=(
  "e3nn==0.6.0"
  "torch-geometric==2.8.1"
  "ase==3.29.0"
  "numpy==2.4.6"
  "pyyaml==6.0.4"
  "tqdm==4.70.1"
  "lmdb==3.0.0"
  "huggingface-hub==2.4.0"
  "pydantic==2.14.4"
)

say() { echo "install_fairchem: $*" >&2; }
die() { say "error: $*"; exit 1; }
# pip, its output on stderr without the noise of this machine's local indexes and of fairchem-core's
# unmet pins (torch~=2.4, numpy<2, wandb, ...: never installed on purpose); keeps pip's exit status
pip_() {
  local log rc=0
  log="$(mktemp)"
  "$PY" -m pip --disable-pip-version-check "$@" >"$log" 2>&1 || rc=$?
  grep -v -e "is ignored: it is neither a file nor a directory" -e "^fairchem-core .* requires " \
    -e "^ERROR: pip's dependency resolver does not currently take into account" "$log" >&2 || true
  rm -f "$log"
  return "$rc"
}

mkdir -p "$1"
DIR="$(cd "$1" && pwd)"
VENV="$DIR/fairchem"
if [ -e "$VENV" ]; then
  [ -f "$VENV/pyvenv.cfg" ] || die "$VENV exists and is not a virtual environment; not touching it"
  say "replacing the existing venv $VENV"
  rm -rf "$VENV"
fi

"$PYTHON" -c 'import sys; sys.exit(not ((3, 9) <= sys.version_info[:2] <= (3, 12)))' \
  || die "$PYTHON is Python $("$PYTHON" -c 'import sys; print(sys.version.split()[0])'); fairchem-core 1.10 needs 3.9-3.12 (set PYTHON=...)"

# 1. venv
say "creating $VENV"
"$PYTHON" -m venv "$VENV"
PY="$VENV/bin/python"

# 2. torch, first and alone; look at pip's plan before installing anything
say "torch==$TORCH_VERSION"
REPORT="$(mktemp)"
trap 'rm -f "$REPORT" "${CONSTRAINTS:-}"' EXIT
pip_ install --quiet --dry-run --report "$REPORT" "torch==$TORCH_VERSION" || die "pip cannot plan torch==$TORCH_VERSION"
"$PY" - "$REPORT" <<'EOF' || die "refusing to install a CUDA build of torch (make a CPU wheel of torch available to pip, e.g. with --find-links, or set TORCH_VERSION)"
import json, sys
plan = json.load(open(sys.argv[1]))["install"]
names = {i["metadata"]["name"].lower(): i["metadata"]["version"] for i in plan}
cuda = sorted(n for n in names if n.startswith(("nvidia-", "cuda-", "triton")))
print("install_fairchem: pip would install torch " + names.get("torch", "?")
      + (" with " + ", ".join(cuda) if cuda else ""), file=sys.stderr)
sys.exit(1 if cuda else 0)
EOF
pip_ install --quiet "torch==$TORCH_VERSION" || die "installing torch failed"
TORCH_BUILT="$("$PY" -W ignore -c 'import torch; print(torch.__version__)')"
"$PY" -W ignore -c 'import sys, torch; sys.exit(torch.version.cuda is not None)' || die "torch $TORCH_BUILT is a CUDA build"
say "torch $TORCH_BUILT (CPU)"
CONSTRAINTS="$(mktemp)"
echo "torch==$TORCH_BUILT" >"$CONSTRAINTS"

# 3. fairchem-core without its dependencies
say "fairchem-core==$FAIRCHEM_VERSION (--no-deps)"
pip_ install --quiet --no-deps "fairchem-core==$FAIRCHEM_VERSION" || die "installing fairchem-core failed"

# 4. what EquiformerV2's import and forward pass need
say "light dependencies: ${LIGHT_DEPS[*]}"
pip_ install --quiet -c "$CONSTRAINTS" "${LIGHT_DEPS[@]}" || die "installing the light dependencies failed"
for dep in "${LIGHT_DEPS[@]}"; do
  name="${dep%%==*}"
  "$PY" -m pip show --quiet "$name" >/dev/null 2>&1 || die "$name did not install"
done

# 5. the torch_scatter stand-in, copied so the venv does not depend on this checkout's location
SITE="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
[ -f "$HERE/torch_scatter_standin/torch_scatter/__init__.py" ] || die "stand-in missing under $HERE/torch_scatter_standin"
rm -rf "$SITE/torch_scatter"
cp -r "$HERE/torch_scatter_standin/torch_scatter" "$SITE/torch_scatter"
find "$SITE/torch_scatter" -name __pycache__ -prune -exec rm -rf {} +
echo "copied from $HERE/torch_scatter_standin by install_fairchem.sh" >"$SITE/torch_scatter/STANDIN"
say "torch_scatter stand-in -> $SITE/torch_scatter"

# 6. checks
NOW="$("$PY" -c 'import torch; print(torch.__version__)')"
[ "$NOW" = "$TORCH_BUILT" ] || die "torch changed from $TORCH_BUILT to $NOW"
"$PY" - <<'EOF' || die "fairchem's EquiformerV2 does not import"
import sys, torch_scatter
assert torch_scatter.__version__.endswith("standin"), torch_scatter.__file__
from fairchem.core.models.equiformer_v2.equiformer_v2 import EquiformerV2Backbone  # noqa: F401
import fairchem.core
print(f"install_fairchem: fairchem-core {fairchem.core.__version__} imports", file=sys.stderr)
EOF
SMOKE="$(mktemp -d)"
trap 'rm -rf "$REPORT" "${CONSTRAINTS:-}" "$SMOKE"' EXIT
"$PY" -c 'import sys, ase.build, ase.io; ase.io.write(sys.argv[1], ase.build.molecule("H2O"))' "$SMOKE/h2o.extxyz"
OMP_NUM_THREADS=1 "$PY" "$HERE/fairchem_peer.py" --structure "$SMOKE/h2o.extxyz" --threads 1 --min-time 0 --rounds 1 \
  --config '{"cutoff": 3.0, "num_layers": 1, "channels": 8, "lmax": 2, "mmax": 1, "heads": 2, "attn_hidden": 8, "alpha_channels": 4, "value_channels": 4, "ffn_hidden": 8, "edge_channels": 8, "num_basis": 8, "grid_resolution": 8}' \
  >"$SMOKE/out.json" 2>"$SMOKE/err.txt" || { cat "$SMOKE/err.txt" >&2; die "smoke run of fairchem_peer.py failed"; }
"$PY" -c 'import json, sys; r = json.loads(open(sys.argv[1]).read()); assert r["atoms"] == 3 and r["edges"] == 6, r' "$SMOKE/out.json" \
  || die "smoke run printed $(cat "$SMOKE/out.json")"
say "ok: $PY (torch $NOW, fairchem-core $FAIRCHEM_VERSION); run: $PY $HERE/fairchem_peer.py --help"

#!/usr/bin/env bash
# Whole-process wall time of `lrs linear fit --method amht-lrs` against a straightforward NumPy
# AMHT-LRS (scripts/reference/amht_lrs_numpy.py) on one noiseless instance (d=100, r=5, k=5,
# t=500, m=80), the two run alternately, RUNS times each. Prints every run, both medians and
# the median ratio NumPy / lrs.
#
# Env: LRS (default target/debug/lrs, built if missing: the dev profile optimises lrs-core
# and every dependency), RUNS (5), SEED (0), VENV (a venv with NumPy from PyPI, created if
# missing; default ${XDG_CACHE_HOME:-~/.cache}/lrs/venv-numpy), PYTHON (python3, to create it).
# OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are unset for the NumPy runs: a forced core type or
# cache size can slow OpenBLAS down.
set -euo pipefail
cd "$(dirname "$0")/.."

LRS="${LRS:-target/debug/lrs}"
RUNS="${RUNS:-5}"
SEED="${SEED:-0}"

source scripts/python-venv.sh
ensure_venv numpy "numpy" numpy
[[ -x "$LRS" ]] || cargo build -p lrs-cli

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
data="$tmp/linear.safetensors"
"$LRS" linear generate --d 100 --r 5 --k 5 --tasks 500 --samples 80 --seed "$SEED" --out "$data" >/dev/null

now() { date +%s.%N; }
lrs_times=() np_times=() ratios=()
for n in $(seq "$RUNS"); do
  t0="$(now)"
  lrs_out="$("$LRS" linear fit --data "$data" --method amht-lrs --rank 5 --sparsity 5 --json)"
  t1="$(now)"
  np_out="$(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$VENV/bin/python" scripts/reference/amht_lrs_numpy.py "$data" 5 5)"
  t2="$(now)"
  lrs_s="$(echo "$t1 - $t0" | bc -l)" np_s="$(echo "$t2 - $t1" | bc -l)"
  lrs_times+=("$lrs_s") np_times+=("$np_s") ratios+=("$(echo "$np_s / $lrs_s" | bc -l)")
  lrs_err="$(echo "$lrs_out" | "$VENV/bin/python" -c 'import json,sys; v=json.load(sys.stdin); print(v["rounds"], v["metrics"]["theta_error"])')"
  np_err="$(echo "$np_out" | "$VENV/bin/python" -c 'import json,sys; v=json.load(sys.stdin); print(v["rounds"], v["theta_error"])')"
  printf 'run %d: lrs %.3f s (rounds, theta error: %s)   numpy %.3f s (%s)\n' \
    "$n" "$lrs_s" "$lrs_err" "$np_s" "$np_err"
done

median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
lrs_med="$(median "${lrs_times[@]}")" np_med="$(median "${np_times[@]}")"
printf 'median wall: lrs %.3f s, numpy %.3f s; ratio of medians %.1fx, median of per-run ratios %.1fx\n' \
  "$lrs_med" "$np_med" "$(echo "$np_med / $lrs_med" | bc -l)" "$(median "${ratios[@]}")"

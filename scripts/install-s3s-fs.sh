#!/usr/bin/env bash
# Installs the S3-compatible test server the object-store tests run against: `s3s-fs`
# (crates.io, an S3 API over a local directory), pinned, under
# ${LRS_TOOLS:-~/.cache/lrs/tools}/bin. Does nothing when that version is already there.
# Prints the binary's path on its last line.
#
# Why s3s-fs and not Garage: see docs/deploy.md ("The test store").
set -euo pipefail

VERSION=0.14.1
ROOT="${LRS_TOOLS:-$HOME/.cache/lrs/tools}"
BIN="$ROOT/bin/s3s-fs"
STAMP="$ROOT/s3s-fs.version"

if [[ -x "$BIN" && "$(cat "$STAMP" 2>/dev/null)" == "$VERSION" ]]; then
    echo "$BIN"
    exit 0
fi
mkdir -p "$ROOT"
# Its own target directory, so the workspace's build is never touched.
CARGO_TARGET_DIR="$ROOT/build" cargo install --locked --root "$ROOT" \
    --version "$VERSION" --features binary s3s-fs >&2
rm -rf "$ROOT/build"
echo "$VERSION" >"$STAMP"
echo "$BIN"

#!/usr/bin/env bash
# Runs the cargo-fuzz (libFuzzer) targets under fuzz/ one after another.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# Default: 60 s for each of task_file, shared_file, http_request, linear_data. Installs
# cargo-fuzz if missing, builds with the nightly toolchain (falls back to RUSTC_BOOTSTRAP=1 on
# stable), fuzzes each target from its committed seeds (fuzz/seeds/<target>/) into a growing,
# git-ignored corpus (fuzz/corpus/<target>/), prints executions, exec/s, coverage and corpus
# size per target, and exits non-zero if any target crashed (the input lands in
# fuzz/artifacts/<target>/; reproduce with `cargo +nightly fuzz run <target> <file>`).
# Not part of CI: too slow. Extra libFuzzer flags: FUZZ_FLAGS="-max_len=65536 ...".
set -euo pipefail

cd "$(dirname "$0")/.."
secs="${1:-60}"
shift || true
all=(task_file shared_file http_request linear_data)
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all[@]}")

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

if cargo +nightly --version >/dev/null 2>&1; then
    fuzz=(cargo +nightly fuzz)
else
    echo "no nightly toolchain: using RUSTC_BOOTSTRAP=1 on the default one" >&2
    export RUSTC_BOOTSTRAP=1
    fuzz=(cargo fuzz)
fi

# Faster builds (16 codegen units); AddressSanitizer and debug assertions stay on (defaults).
build_flags=(--codegen-units 16)
for t in "${targets[@]}"; do
    "${fuzz[@]}" build "${build_flags[@]}" "$t"
done

failed=()
summary=()
for t in "${targets[@]}"; do
    corpus="fuzz/corpus/$t"
    seeds="fuzz/seeds/$t"
    mkdir -p "$corpus" "fuzz/artifacts/$t"
    dict=()
    [ -f "fuzz/dicts/$t.dict" ] && dict=("-dict=fuzz/dicts/$t.dict")
    log="fuzz/artifacts/$t/last-run.log"
    echo "== $t: ${secs}s" >&2
    set +e
    # shellcheck disable=SC2086
    "${fuzz[@]}" run "${build_flags[@]}" "$t" "$corpus" "$seeds" -- \
        -max_total_time="$secs" -timeout=20 -rss_limit_mb=4096 -max_len=16384 \
        -print_final_stats=1 "${dict[@]}" ${FUZZ_FLAGS:-} 2>&1 | tee "$log" | grep -E '^(#|==|INFO: seed|stat::|SUMMARY|thread)' >&2
    rc=${PIPESTATUS[0]}
    set -e
    done_line=$(grep -E '^#[0-9]+\s+DONE' "$log" | tail -1 || true)
    execs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}' || true)
    rate=$(grep -E '^stat::average_exec_per_sec' "$log" | awk '{print $2}' || true)
    cov=$(echo "$done_line" | grep -oE 'cov: [0-9]+' | awk '{print $2}' || true)
    ft=$(echo "$done_line" | grep -oE 'ft: [0-9]+' | awk '{print $2}' || true)
    corp=$(echo "$done_line" | grep -oE 'corp: [0-9]+/[0-9]+[a-zA-Z]*' | awk '{print $2}' || true)
    if [ "$rc" -ne 0 ]; then
        failed+=("$t")
        summary+=("$t: CRASHED (exit $rc) after ${execs:-?} execs — see $log and fuzz/artifacts/$t/")
    else
        summary+=("$t: ${execs:-?} execs, ${rate:-?} exec/s, cov ${cov:-?}, ft ${ft:-?}, corpus ${corp:-?}")
    fi
done

echo
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
    echo "crashed: ${failed[*]}" >&2
    exit 1
fi

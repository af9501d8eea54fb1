#!/usr/bin/env bash
# Chooses the task phase's hyperparameters on validation rows only: every variant below is
# trained with `[data] validation` set (the latest share of each user's m training ratings
# held out), and the table printed is mean per-user *validation* AUC. Test rows are scored by
# `lrs train` as always but never read here; run the chosen variant again without
# validation rows (all m ratings) for the reported numbers.
#
#   bash scripts/tune-movielens.sh            # 300 users, m = 20, validation 25 %
#   TASKS=0 SHOTS=10 bash scripts/tune-movielens.sh
set -euo pipefail
cd "$(dirname "$0")/.."

LRS=${LRS:-target/release/lrs}
BASE=${BASE:-configs/movielens-minilm.toml}
OUT=${OUT:-runs/tune}
SHOTS=${SHOTS:-20}
TASKS=${TASKS:-300}
VALIDATION=${VALIDATION:-0.25}
ROUNDS=${ROUNDS:-3}

[ -x "$LRS" ] || cargo build --release
mkdir -p "$OUT/configs"

# variant NAME KEY=VALUE... : BASE with each top-level or [task]/[data] key replaced (keys
# that appear once in the file) or added under [data] (validation).
variant() {
    local name=$1 cfg="$OUT/configs/$1.toml"
    shift
    sed "s/^\[data\]$/[data]\nvalidation = $VALIDATION/" "$BASE" >"$cfg"
    local kv key value
    for kv in "$@"; do
        key=${kv%%=*}
        value=${kv#*=}
        if grep -q "^$key = " "$cfg"; then
            sed -i "s|^$key = .*|$key = $value|" "$cfg"
        else
            sed -i "s|^\[task\]$|[task]\n$key = $value|" "$cfg"
        fi
    done
    if [ ! -f "$OUT/$name/summary.json" ]; then
        rm -rf "${OUT:?}/$name"
        # Its per-round lines (which include test AUC) go to a log, not to the screen.
        "$LRS" train --config "$cfg" --run "$OUT/$name" --shots "$SHOTS" \
            --max-tasks "$TASKS" --rounds "$ROUNDS" >"$OUT/$name.log" 2>&1 ||
            { tail -5 "$OUT/$name.log" >&2; exit 1; }
    fi
}

variant shared-only 'method="shared-only"'
variant lrs-lr5e-3 sparse_lr=5e-3
variant lrs-lr2e-2 sparse_lr=2e-2
variant lrs-head8 task_head=true head_nnz=8
variant shared-only-head8 'method="shared-only"' task_head=true head_nnz=8

python3 - "$OUT" <<'EOF'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
print(f"{'variant':<22} {'validation AUC':>14} {'validation loss by round':>30}")
for run in sorted(p for p in out.iterdir() if (p / "summary.json").exists()):
    s = json.loads((run / "summary.json").read_text())
    losses = " ".join(f"{x:.4f}" for x in s.get("validation_loss_by_round", []))
    auc = s.get("validation_auc")
    print(f"{run.name:<22} {auc if auc is None else f'{auc:.4f}':>14} {losses:>30}")
EOF

#!/usr/bin/env bash
# Chooses the task phase's hyperparameters on validation rows only: every variant below is
# trained with `[data] validation` set (the latest share of each user's m training ratings
# held out), and the table printed is mean per-user *validation* AUC. Test rows are scored by
# `lrs train` as always but never read here; run the chosen variant again without
# validation rows (all m ratings) for the reported numbers.
#
#   bash scripts/tune-movielens.sh            # 300 users, m = 20, validation 25 %
#   TASKS=0 SHOTS=10 bash scripts/tune-movielens.sh
#   GRID=personalize bash scripts/tune-movielens.sh   # step counts of configs/minilm-qv-top1.toml
#   GRID=deep bash scripts/tune-movielens.sh   # configs/movielens-minilm.toml, all users, seed 0
set -euo pipefail
cd "$(dirname "$0")/.."

GRID=${GRID:-sparse}
if [ "$GRID" = deep ]; then
    BASE=${BASE:-configs/movielens-minilm.toml}
    OUT=${OUT:-runs/tune-deep}
    TASKS=${TASKS:-0}
    ROUNDS=${ROUNDS:-4}
fi
if [ "$GRID" = personalize ]; then
    BASE=${BASE:-configs/minilm-qv-top1.toml}
    OUT=${OUT:-runs/tune-personalize}
    ROUNDS=${ROUNDS:-1}
fi
LRS=${LRS:-target/release/lrs}
BASE=${BASE:-configs/movielens-minilm.toml}
OUT=${OUT:-runs/tune}
SHOTS=${SHOTS:-20}
TASKS=${TASKS:-300}
VALIDATION=${VALIDATION:-0.25}
ROUNDS=${ROUNDS:-3}

[ -x "$LRS" ] || cargo build --release
mkdir -p "$OUT/configs"

# variant NAME KEY=VALUE... : BASE with each key replaced, [data] validation added. A key is
# `section.key` (replaced in that section only, added to it if absent) or a bare key (the
# top-level key of that name, else the [task] key, else added to [task]).
variant() {
    local name=$1 cfg="$OUT/configs/$1.toml"
    shift
    python3 - "$BASE" "$cfg" "$VALIDATION" "$@" <<'PY'
import re, sys
base, out, validation, *pairs = sys.argv[1:]
text = open(base).read()
# Split into sections: [("", top-level text), ("data", ...), ...].
parts = re.split(r"^\[([a-z_]+)\]\n", text, flags=re.M)
sections = [["", parts[0]]] + [[parts[i], parts[i + 1]] for i in range(1, len(parts), 2)]
def put(section, key, value):
    for sec in sections:
        if sec[0] == section:
            line = re.compile(rf"^{re.escape(key)} = .*$", re.M)
            if line.search(sec[1]):
                sec[1] = line.sub(lambda _: f"{key} = {value}", sec[1])
            else:
                sec[1] = f"{key} = {value}\n" + sec[1]
            return
    sections.append([section, f"{key} = {value}\n"])
put("data", "validation", validation)
# Tuning reads validation numbers only: no refit on all rows.
put("data", "refit", "false")
for kv in pairs:
    key, value = kv.split("=", 1)
    if "." in key:
        put(*key.split(".", 1), value)
    elif re.search(rf"^{re.escape(key)} = ", sections[0][1], re.M):
        put("", key, value)
    else:
        put("task", key, value)
with open(out, "w") as f:
    f.write("".join((f"[{n}]\n" if n else "") + body for n, body in sections))
PY
    if [ ! -f "$OUT/$name/summary.json" ]; then
        rm -rf "${OUT:?}/$name"
        # Its per-round lines (which include test AUC) go to a log, not to the screen.
        "$LRS" train --config "$cfg" --run "$OUT/$name" --shots "$SHOTS" \
            --max-tasks "$TASKS" --rounds "$ROUNDS" >"$OUT/$name.log" 2>&1 ||
            { tail -5 "$OUT/$name.log" >&2; exit 1; }
    fi
}

if [ "$GRID" = personalize ]; then
    # How many task-phase steps personalization needs: the base config's 10 + 20 steps
    # against fewer, larger ones (a step costs a forward and backward pass of the top layer).
    variant steps10-20 task.steps=10 task.lr=1e-2 task.sparse_steps=20 task.sparse_lr=5e-3
    variant steps5-10 task.steps=5 task.lr=2e-2 task.sparse_steps=10 task.sparse_lr=1e-2
    variant steps5-5 task.steps=5 task.lr=2e-2 task.sparse_steps=5 task.sparse_lr=2e-2
    variant steps3-6 task.steps=3 task.lr=3e-2 task.sparse_steps=6 task.sparse_lr=1.5e-2
    variant shared-only 'method="shared-only"' task.steps=10 task.lr=1e-2
elif [ "$GRID" = deep ]; then
    # The full-depth default's choices (docs/results.md): the sparse budget's annealing, a
    # neutral shared phase, against the baselines with the same early stopping.
    variant lrs
    variant lrs-no-anneal sparsity.anneal_start=1.0
    variant lrs-neutral shared.task_parts=false
    variant shared-only 'method="shared-only"'
    variant global-lora 'method="global-lora"'
    # A slower shared phase (run it with ROUNDS=12) and a per-user intercept (a 1-sparse head,
    # and the bias alone).
    variant global-lora-lr5e-4 'method="global-lora"' shared.lr=5e-4
    variant lrs-head1 task_head=true head_nnz=1
    variant lrs-intercept task_head=true head_weight=false
else
    variant shared-only 'method="shared-only"'
    variant lrs-lr5e-3 sparse_lr=5e-3
    variant lrs-lr2e-2 sparse_lr=2e-2
    variant lrs-head8 task_head=true head_nnz=8
    variant shared-only-head8 'method="shared-only"' task_head=true head_nnz=8
fi

python3 - "$OUT" <<'EOF'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
print(f"{'variant':<22} {'validation AUC':>14} {'validation loss by round':>30} {'last round s':>12}")
for run in sorted(p for p in out.iterdir() if (p / "summary.json").exists()):
    s = json.loads((run / "summary.json").read_text())
    losses = " ".join(f"{x:.4f}" for x in s.get("validation_loss_by_round", []))
    auc = s.get("validation_auc")
    rounds = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines() if l.strip()]
    secs = rounds[-1].get("round_s") if rounds else None
    secs = "" if secs is None else f"{secs:.1f}"
    print(f"{run.name:<22} {auc if auc is None else f'{auc:.4f}':>14} {losses:>30} {secs:>12}")
EOF

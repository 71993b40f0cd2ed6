#!/usr/bin/env bash
# Issue 38, lever 3, in one device run (under 10 minutes on an H100 or H200): train the teacher of
# models/de-en-teacher-gpu.toml for its max_time, translate the training sources with it by beam
# search on the GPU (scripts/backtranslate.py in shards, in a seeded random order, until
# DISTILL_SECONDS have passed: every finished shard counts), and write the distilled pairs and the
# logs to $OUT: distilled.de.gz, distilled.en.gz (the real German sources and the teacher's
# English, line by line), train.log, distill.log.
#
# On the GPU machine (carry runs/general-data/train.de.gz, train.en.gz, valid.de, valid.en):
#     bash scripts/teacher_gpu.sh
# Rehearsal on the CPU, the same steps with a tiny model for seconds (TRAIN_SRC and the other
# data variables name other files, as the test does):
#     REHEARSAL=1 OUT=runs/teacher-rehearsal/out bash scripts/teacher_gpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
DATA=${DATA:-runs/general-data}
TRAIN_SRC=${TRAIN_SRC:-$DATA/train.de.gz}
TRAIN_TGT=${TRAIN_TGT:-$DATA/train.en.gz}
VALID_SRC=${VALID_SRC:-$DATA/valid.de}
VALID_TGT=${VALID_TGT:-$DATA/valid.en}
PYTHON=${PYTHON:-python3}
if [ -n "${REHEARSAL:-}" ]; then
    RUNS=${RUNS:-runs/teacher-rehearsal}
    train=(--preset tiny --device cpu --threads 1 --max-time "${TRAIN_SECONDS:-15}" --batch-tokens 1024 --valid-every 20 --save-every 10 --log-every 10)
    distill=(--device cpu --workers 1 --limit "${DISTILL_LINES:-300}" --shard-lines 100)
    distill_seconds=${DISTILL_SECONDS:-120}
else
    RUNS=${RUNS:-runs/teacher}
    # The machine's python has torch with CUDA; the project installs beside it without its dependencies.
    "$PYTHON" -m pip install -q --no-deps --no-build-isolation --no-index -e . >/dev/null 2>&1 || export PYTHONPATH="$PWD/src"
    "$PYTHON" -c "import torch; print('torch', torch.__version__, '|', torch.cuda.get_device_name(0))"
    train=()
    distill=(--device cuda --workers 1 --batch-tokens 65536 --shard-lines 20000)
    distill_seconds=${DISTILL_SECONDS:-180}
fi
OUT=${OUT:-$RUNS/out}
mkdir -p "$OUT" "$RUNS"
for file in "$TRAIN_SRC" "$TRAIN_TGT" "$VALID_SRC" "$VALID_TGT"; do
    [ -f "$file" ] || { echo "teacher_gpu.sh: $file is missing (python scripts/prepare_general.py --out $DATA makes it)" >&2; exit 2; }
done
echo "== 1. teacher: $(date -u +%T)"
"$PYTHON" -m xformer_cli train --config models/de-en-teacher-gpu.toml --out "$RUNS/model" \
    --src "$TRAIN_SRC" --tgt "$TRAIN_TGT" --valid-src "$VALID_SRC" --valid-tgt "$VALID_TGT" "${train[@]}" > "$OUT/train.log" 2>&1 \
    || { tail -20 "$OUT/train.log"; exit 1; }
tail -5 "$OUT/train.log"
echo "== 2. distillation for at most $distill_seconds s: $(date -u +%T)"
timeout "$distill_seconds" "$PYTHON" scripts/backtranslate.py --model "$RUNS/model/bundle" --mono "$TRAIN_SRC" \
    --src-lang de --tgt-lang en --out "$RUNS/distill" --search beam "${distill[@]}" > "$OUT/distill.log" 2>&1 \
    || echo "stopped at the time limit (or failed: see distill.log); the finished shards count"
tail -3 "$OUT/distill.log"
"$PYTHON" scripts/backtranslate.py --out "$RUNS/distill" --src-lang de --tgt-lang en --collect
cp "$RUNS/distill/bt.de.gz" "$OUT/distilled.de.gz"
cp "$RUNS/distill/bt.en.gz" "$OUT/distilled.en.gz"
echo "== done: $(date -u +%T); $OUT"

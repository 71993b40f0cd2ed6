#!/usr/bin/env bash
# Issue 21's long run, after the table of choices (scripts/issue21_pipeline.sh chose greedy
# search, tagged, 2:1): each step skips what is done, so the same command continues after any
# stop (a session's end, Ctrl-C; training resumes from its last checkpoint):
#
#     nohup nice -n 19 bash scripts/issue21_long.sh >> runs/issue21-long.log 2>&1 &
#
# 1. back-translate the first LIMIT sentences of the mono order greedily (the first 40,000 are
#    the table's, already done) and collect the English ones into runs/bt-greedy/bt.{de,en}.gz;
# 2. unpack the default model this run starts from (commit f4d7a88) into runs/;
# 3. train models/de-en-general.toml into runs/de-en-news.
set -euo pipefail
cd "$(dirname "$0")/.."
REVERSE=${REVERSE:-runs/en-de-general/bundle}
LIMIT=${LIMIT:-300000}
START=runs/de-en-general-f4d7a88

python scripts/backtranslate.py --model "$REVERSE" --out runs/bt-greedy --search greedy --limit "$LIMIT"
BT=runs/bt-greedy/bt.de.gz
if [ ! -f "$BT" ] || [ -n "$(find runs/bt-greedy -name 'shard-*.de' -newer "$BT")" ]; then
    python scripts/backtranslate.py --out runs/bt-greedy --collect  # only when a shard is newer than the corpus
fi
if [ ! -f "$START/model.safetensors" ]; then
    mkdir -p "$START"
    git archive f4d7a88 models/de-en-general | tar -x --strip-components=2 -C "$START"
fi
resume=()
[ -d runs/de-en-news/checkpoints ] && resume=(--resume)
xformer train --config models/de-en-general.toml --out runs/de-en-news "${resume[@]}"

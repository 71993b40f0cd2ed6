#!/usr/bin/env bash
# Issue 21 on a lent GPU: train models/de-en-news-gpu.toml there, in two halves.
#
#   here:   bash scripts/issue21_gpu.sh pack    # the recipe's data, xz-compressed, into .gpu/ (git ignores it)
#   there:  bash scripts/issue21_gpu.sh train   # through the device tool, carrying .gpu, timeout about 560 s
#
# With bench/gpu.sh in the same call (about 90 s more), one machine start serves both:
#   bash bench/gpu.sh > $OUT/gpu.log 2>&1; bash scripts/issue21_gpu.sh train
#
# pack needs runs/general-data (scripts/prepare_general.py) and runs/bt-greedy/bt.{de,en}.gz
# (scripts/issue21_long.sh). The working tree and .gpu travel together, 64 MiB at most; gzip's
# 48 MB of text are some 33 MB in xz. train unpacks .gpu into runs/, trains into runs/news-gpu
# and writes to $OUT (a temporary folder where unset): the bundle in float16 (under the 16 MiB a
# returned file may have), metrics.jsonl, run.json, the tokenizer and the training log: a run
# folder that scripts/ship_model.py takes. Arguments after `train` go to `xformer train` (a
# trial here: --device cpu --preset tiny --max-steps 3).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
TEXTS="runs/general-data/train.de runs/general-data/train.en runs/bt-greedy/bt.de runs/bt-greedy/bt.en"
case "${1:-}" in
pack)
    grep -qsx '/.gpu/' .git/info/exclude || echo '/.gpu/' >> .git/info/exclude
    mkdir -p .gpu
    python3 - $TEXTS <<'PY'
import gzip, lzma, shutil, sys
from pathlib import Path
from xformer_cli.text.tokenizer import Tokenizer

for text in sys.argv[1:]:
    with gzip.open(f"{text}.gz", "rb") as f, lzma.open(f".gpu/{Path(text).name}.xz", "wb", preset=6) as g:
        shutil.copyfileobj(f, g, 1 << 20)
for side in ("de", "en"):
    shutil.copyfile(f"runs/general-data/valid.{side}", f".gpu/valid.{side}")
Tokenizer.load("models/de-en-general/spm.model").with_tag().save(".gpu/spm-tagged.model")
PY
    du -sh .gpu
    ;;
train)
    shift
    OUT=${OUT:-$(mktemp -d)}
    python3 -c "import xformer_cli" 2>/dev/null ||
        python3 -m pip install -q --no-deps --no-build-isolation --no-index -e . >/dev/null 2>&1 || export PYTHONPATH="$PWD/src"
    mkdir -p runs/general-data runs/bt-greedy
    python3 - $TEXTS <<'PY'
import gzip, lzma, shutil, sys
from pathlib import Path

for text in sys.argv[1:]:
    with lzma.open(f".gpu/{Path(text).name}.xz", "rb") as f, gzip.open(f"{text}.gz", "wb", compresslevel=1) as g:
        shutil.copyfileobj(f, g, 1 << 20)
for name in ("valid.de", "valid.en", "spm-tagged.model"):
    shutil.copyfile(f".gpu/{name}", f"runs/general-data/{name}")
PY
    python3 -m xformer_cli train --config models/de-en-news-gpu.toml --out runs/news-gpu "$@" 2>&1 | tee "$OUT/train.log"
    python3 - "$OUT" <<'PY'
import shutil, sys
from pathlib import Path

import torch

from xformer_cli.bundles.bundle import load_bundle, save_bundle

out = Path(sys.argv[1])
# No model card: scripts/ship_model.py writes its own, and a call returns at most 8 files
# (here 7, so that bench/gpu.sh's log can come back from the same call).
save_bundle(load_bundle("runs/news-gpu/bundle"), out / "bundle", dtype=torch.float16)
for name in ("metrics.jsonl", "run.json", "spm.model"):  # what scripts/ship_model.py reads beside the bundle
    shutil.copyfile(f"runs/news-gpu/{name}", out / name)
print(f"wrote {out}: " + ", ".join(f"{p.relative_to(out)} {p.stat().st_size / 1e6:.1f} MB" for p in sorted(out.rglob("*")) if p.is_file()))
PY
    ;;
*)
    echo "usage: bash scripts/issue21_gpu.sh pack | train [xformer train options]" >&2
    exit 2
    ;;
esac

#!/usr/bin/env bash
# The GPU path, measured in one run on one GPU (about 4 minutes on an H200; needs no ../shared):
#   1. the test suite with CUDA present (tests/test_cuda.py runs instead of skipping)
#   2. training target tokens/s and model FLOPs utilization of the `base` preset (bf16 autocast)
#   3. translation sentences/s on the GPU, greedy and beam 5
#   4. BLEU of the shipped bundle on the GPU against the same bundle on the CPU
# Usage: bash bench/speed/gpu.sh   (on a machine whose python3 has torch with CUDA, typer, rich,
# sentencepiece, sacrebleu, safetensors, huggingface_hub, filelock and numpy installed)
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
python3 -m pip install -q --no-deps --no-build-isolation --no-index -e . >/dev/null 2>&1 || export PYTHONPATH="$PWD/src"
python3 -c "import torch; print('torch', torch.__version__, '|', torch.cuda.get_device_name(0), '|', torch.cuda.device_count(), 'GPU(s)')"
echo "== 1. test suite with CUDA"
# On one process the suite outlasts 240 s there; pytest-xdist, where installed, spreads it over the cores.
# No -q: pyproject.toml already adds one, and a second drops the count of passed tests.
parallel=$(python3 -c "import xdist" 2>/dev/null && echo "-n auto" || true)
timeout 240 python3 -m pytest -p no:cacheprovider -p no:warnings $parallel -rfEs --tb=short tests 2>&1 | tail -40 || echo "test suite: failed or timed out"
echo "== 2. training speed, preset base"
timeout 150 python3 bench/speed/train_gpu.py --preset base --steps 50 || echo "training benchmark: failed or timed out"
echo "== 3 and 4. translation speed and BLEU, GPU against CPU"
timeout 150 python3 bench/speed/translate_gpu.py || echo "translation benchmark: failed or timed out"

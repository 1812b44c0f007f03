#!/usr/bin/env bash
# What experiments/gpu/run.py needs on the lent GPU machine, built here into .gpu/ (ignored by git;
# carry it: ~50 MB of the call's 64 MiB). The machine's image (Python 3.12, torch, transformers,
# scipy, pytest; the device tool's notes on its machine kinds) lacks the wheels below and cannot reach PyPI, and
# ../shared does not travel: SST-2, WNLI and the MiniLM checkpoint go in shared.tar.xz, the
# checkpoint's float weights in fp16 (half the bytes; they load into fp32 models, so every proxy
# there, on the CPU or the GPU, starts from the same rounded weights). plotly is left out: only
# drawing needs it. Run from the repository root: bash experiments/gpu/prepare.sh
set -euo pipefail
SHARED=${ARCH_SEARCH_SHARED:-../shared}
PY=${PYTHON:-python3}
mkdir -p .git/info && { grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo /.gpu/ >> .git/info/exclude; }
rm -rf .gpu && mkdir -p .gpu/whl .gpu/shared/glue .gpu/shared/models/all-MiniLM-L6-v2
PLATFORMS="--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64"
$PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp $PLATFORMS -d .gpu/whl \
  optuna==5.1.0 hydra-core==1.3.8 omegaconf==2.3.1 alembic==1.20.1 sqlalchemy==2.1.9 greenlet==3.5.6 colorlog==6.12.0 \
  Mako==1.4.3 yacs==0.1.8 termcolor==3.3.0
# published as source only: built here into pure-Python wheels
$PY -m pip wheel -q --no-deps -w .gpu/whl antlr4-python3-runtime==4.9.3 fvcore==0.1.5.post20221221 iopath==0.1.10
cp -r "$SHARED/glue/SST-2" "$SHARED/glue/WNLI" .gpu/shared/glue/
M=.gpu/shared/models/all-MiniLM-L6-v2
cp "$SHARED"/models/all-MiniLM-L6-v2/{config.json,tokenizer.json,tokenizer_config.json,special_tokens_map.json,vocab.txt} $M/
$PY - "$SHARED/models/all-MiniLM-L6-v2/model.safetensors" "$M/model.safetensors" <<'PYEOF'
import sys
from safetensors.torch import load_file, save_file
weights = load_file(sys.argv[1])
save_file({k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in weights.items()}, sys.argv[2])
PYEOF
tar -C .gpu -cJf .gpu/shared.tar.xz shared && rm -rf .gpu/shared
du -sh .gpu/whl .gpu/shared.tar.xz

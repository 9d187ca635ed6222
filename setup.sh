#!/usr/bin/env bash
# One command sets up everything: a virtual environment at .venv with torch, timm and the
# OpenMMLab stack. Safe to re-run. Set PIP_FIND_LINKS to a folder holding a prebuilt
# mmcv-2.1.0 wheel to skip its ~30-minute source build.
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=(.venv/bin/python -m pip --disable-pip-version-check)

"${PIP[@]}" install -r requirements/torch.txt
"${PIP[@]}" install -r requirements.txt
# mmcv's build needs these in the environment it is built in (--no-build-isolation).
"${PIP[@]}" install 'setuptools>=77,<82' wheel ninja 'mmengine==0.10.7'

if ! .venv/bin/python -c 'import mmcv.ops' 2>/dev/null; then
    if ! "${PIP[@]}" install --no-deps --only-binary mmcv 'mmcv==2.1.0' 2>/dev/null; then
        echo "setup.sh: no mmcv 2.1.0 wheel found; building it from source with ops (about 30-40 min on 2 cores)"
        build_dir=$(mktemp -d)
        "${PIP[@]}" download --no-deps --no-binary :all: 'mmcv==2.1.0' -d "$build_dir"
        tar -xzf "$build_dir"/mmcv-2.1.0.tar.gz -C "$build_dir"
        # torch 2.14's headers need C++20; mmcv 2.1.0 asks for C++14/17.
        sed -i -E 's/-std=c\+\+1[47]/-std=c++20/g' "$build_dir"/mmcv-2.1.0/setup.py
        MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS=${MAX_JOBS:-2} \
            "${PIP[@]}" install --no-deps --no-build-isolation "$build_dir"/mmcv-2.1.0
        rm -rf "$build_dir"
    fi
fi
"${PIP[@]}" install -r requirements/mm.txt
# This repo's packages (models, engine, mmadapter), editable: importable from any directory.
"${PIP[@]}" install --no-deps --no-build-isolation -e .
venv_python="$PWD/.venv/bin/python"
(cd / && "$venv_python" -c 'import timm, mmcv.ops, mmseg, mmdet, models, engine, mmadapter; print("setup.sh: environment ready in .venv")')

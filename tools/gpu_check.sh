#!/usr/bin/env bash
# The one GPU check of this repo (issue 26): on a machine with an NVIDIA GPU, from the repo root,
#
#     bash tools/gpu_check.sh            # about 8 minutes on an H200; results in $OUT (default ./gpu_out)
#     GPU_CHECK_DRY=1 bash tools/gpu_check.sh   # the same steps on the CPU at a tiny size (a check of the script)
#
# 1. timm: the GPU machine's python3 has torch with CUDA, but its timm may be missing or of another
#    version. Carry the wheel the repo pins, downloaded beforehand on any machine with pip:
#        pip download --no-deps --python-version 3.12 --only-binary :all: timm==1.0.31 -d .whl
#    (.whl/ is ignored by git; name it in what travels to the GPU machine). When .whl/timm-*.whl is
#    there it is installed into .gpu_site (no dependencies: torch, torchvision, pyyaml, safetensors and
#    huggingface_hub come from the machine) and PYTHONPATH=$PWD/.gpu_site:$PWD.
# 2. nvidia-smi, and the versions of python, torch, CUDA, cuDNN and timm.
# 3. tests/test_cuda.py (outputs against float64 on the CPU in every precision, gradients, no
#    device-to-host sync); errors also to $OUT/cuda-errors.md. Skips what would pass its budget.
# 4. benchmark.py --gpu: the GPU_ROWS preset, CSV $OUT/benchmark-gpu.csv and its table .md.
# 5. benchmark.py --profile: torch.profiler tables of one bf16-autocast training step, batch 128,
#    of dfformer_s18 and convformer_s18: $OUT/profile-MODEL.txt.
# Each step runs under `timeout`, and a step that fails does not stop the next; the whole log goes
# to $OUT/gpu_check.log and a summary table is printed last. GPU_CHECK_SECONDS (default 510) is the
# time the whole may take: the benchmark's --time-budget is what is left of it after the tests.
set -u
cd "$(dirname "$0")/.." || exit 1
OUT=${OUT:-./gpu_out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
DRY=${GPU_CHECK_DRY:-0}
TOTAL=${GPU_CHECK_SECONDS:-510}
export PYTHONUNBUFFERED=1
exec > >(tee "$OUT/gpu_check.log") 2>&1

if [ "$DRY" = 1 ]; then
    SCALE=(--device cpu --gpu-scale tiny --threads "${GPU_CHECK_THREADS:-2}")
    TEST_BUDGET=30
else
    SCALE=()
    TEST_BUDGET=${GPU_CHECK_TEST_SECONDS:-120}
fi

SITE=
if ls .whl/timm-*.whl >/dev/null 2>&1; then
    rm -rf .gpu_site
    if "$PY" -m pip install -q --no-deps --no-index --no-compile --target .gpu_site .whl/timm-*.whl; then
        SITE=$PWD/.gpu_site:
    else
        echo "gpu_check: installing .whl/timm-*.whl failed; using the machine's timm"
    fi
fi
export PYTHONPATH="$SITE$PWD${PYTHONPATH:+:$PYTHONPATH}"

declare -a SUMMARY=()
step() {  # step NAME SECONDS COMMAND...: run under timeout, record its exit status and time
    local name=$1 limit=$2 t0=$SECONDS rc
    shift 2
    echo
    echo "=== $name (timeout ${limit} s) ==="
    timeout -k 10 "$limit" "$@"
    rc=$?
    [ $rc = 124 ] && echo "gpu_check: $name stopped at its ${limit} s timeout"
    SUMMARY+=("| $name | $rc | $((SECONDS - t0)) |")
}

echo "=== machine ==="
if [ "$DRY" = 1 ]; then echo "GPU_CHECK_DRY=1: everything on the CPU at a tiny size"; fi
nvidia-smi || echo "gpu_check: no nvidia-smi"
git log -1 --format='repo at %h %s' 2>/dev/null | cut -c1-120
"$PY" - <<'EOF'
import sys, torch
print(f'python {sys.version.split()[0]}, torch {torch.__version__}, CUDA {torch.version.cuda}, '
      f'cuDNN {torch.backends.cudnn.version()}, CUDA available {torch.cuda.is_available()}')
if torch.cuda.is_available():
    print(f'device {torch.cuda.get_device_name()}, capability {torch.cuda.get_device_capability()}')
try:
    import timm
    print(f'timm {timm.__version__} from {timm.__file__}')
except ImportError as e:
    print(f'timm missing ({e}): carry .whl/timm-1.0.31-py3-none-any.whl (see the top of tools/gpu_check.sh)')
EOF

if [ "$DRY" = 1 ]; then
    # (no CUDA here: tests/test_cuda.py only collects and skips)
    step tests 60 "$PY" -m pytest -q -rs -p no:cacheprovider tests/test_cuda.py
else
    printf '| model | precision | size | relative L2 error |\n| --- | --- | --- | ---: |\n' > "$OUT/cuda-errors.md"
    export DFFORMER_CUDA_REPORT="$OUT/cuda-errors.md" DFFORMER_CUDA_TEST_BUDGET=$TEST_BUDGET
    step tests $((TEST_BUDGET + 90)) "$PY" -m pytest -q -rs -p no:cacheprovider tests/test_cuda.py
fi

# the benchmark gets what is left, less about 70 s for the profiles
LEFT=$((TOTAL - SECONDS - 70))
BUDGET=$(( LEFT > 330 ? 330 : (LEFT < 60 ? 60 : LEFT) ))
LIMIT=$((BUDGET + 90))
if [ "$DRY" = 1 ]; then BUDGET=0; LIMIT=300; fi
step benchmark $LIMIT "$PY" benchmark.py --gpu "${SCALE[@]}" --time-budget "$BUDGET" \
    --csv "$OUT/benchmark-gpu.csv"
step profile 120 "$PY" benchmark.py --profile dfformer_s18 convformer_s18 "${SCALE[@]}" --profile-dir "$OUT"

echo
echo "=== summary ($SECONDS s) ==="
[ -f "$OUT/benchmark-gpu.md" ] && cat "$OUT/benchmark-gpu.md" && echo
grep -h '^# step' "$OUT"/profile-*.txt 2>/dev/null
echo
echo '| step | exit status | seconds |'
echo '| --- | ---: | ---: |'
printf '%s\n' "${SUMMARY[@]}"
echo "files: $(cd "$OUT" && ls | tr '\n' ' ')"

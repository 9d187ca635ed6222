#!/usr/bin/env bash
# Usage: bash tools/dist_train.sh CONFIG NUM_PROCS [train.py args...]   (multi-node: see ../../launch.sh)
TASK=$(basename "$(cd "$(dirname "$0")/.." && pwd)")  # segmentation or detection
exec "$(dirname "$0")/../../launch.sh" "$TASK/tools/train.py" "$2" "$1" --launcher pytorch "${@:3}"

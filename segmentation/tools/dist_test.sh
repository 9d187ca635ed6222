#!/usr/bin/env bash
# Usage: bash tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCS [test.py args...]   (multi-node: see ../../launch.sh)
TASK=$(basename "$(cd "$(dirname "$0")/.." && pwd)")  # segmentation or detection
exec "$(dirname "$0")/../../launch.sh" "$TASK/tools/test.py" "$3" "$1" "$2" --launcher pytorch "${@:4}"

#!/usr/bin/env bash
# Usage: bash segmentation/tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCS [test.py args...]   (multi-node: tools/launch.sh)
HERE=$(dirname "$0")
exec "$HERE/../../tools/launch.sh" "$HERE/test.py" "$3" "$1" "$2" --launcher pytorch "${@:4}"

#!/usr/bin/env bash
# Usage: bash segmentation/tools/dist_train.sh CONFIG NUM_PROCS [train.py args...]   (multi-node: tools/launch.sh)
HERE=$(dirname "$0")
exec "$HERE/../../tools/launch.sh" "$HERE/train.py" "$2" "$1" --launcher pytorch "${@:3}"

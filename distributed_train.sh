#!/usr/bin/env bash
# Usage: ./distributed_train.sh NUM_PROCS [train.py args...]   (multi-node: see tools/launch.sh)
HERE=$(dirname "$0")
exec "$HERE/tools/launch.sh" "$HERE/train.py" "$@"

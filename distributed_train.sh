#!/usr/bin/env bash
# Usage: ./distributed_train.sh NUM_PROCS [train.py args...]   (multi-node: see launch.sh)
exec "$(dirname "$0")/launch.sh" train.py "$@"

#!/usr/bin/env bash
# Usage: ./distributed_validate.sh NUM_PROCS [validate.py args...]   (multi-node: see launch.sh)
exec "$(dirname "$0")/launch.sh" validate.py "$@"

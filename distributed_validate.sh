#!/usr/bin/env bash
# Usage: ./distributed_validate.sh NUM_PROCS [validate.py args...]   (multi-node: see tools/launch.sh)
HERE=$(dirname "$0")
exec "$HERE/tools/launch.sh" "$HERE/validate.py" "$@"

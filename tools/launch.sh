#!/usr/bin/env bash
# Usage: tools/launch.sh SCRIPT NUM_PROCS [script args...]
# torchrun with NUM_PROCS processes per node (one per GPU; gloo on CPU). Multi-node: set NNODES,
# NODE_RANK, MASTER_ADDR (and PORT or MASTER_PORT) on every node. Under SLURM (srun) or MPI
# (mpirun) start the script directly instead: timm and mmengine read their rank variables.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
SCRIPT=$1
NUM_PROC=$2
shift 2
PYTHON=${PYTHON:-$( [ -x "$REPO/.venv/bin/python" ] && echo "$REPO/.venv/bin/python" || echo python3 )}
exec "$PYTHON" -m torch.distributed.run --nproc_per_node="$NUM_PROC" \
    --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${PORT:-${MASTER_PORT:-29500}}" \
    "$SCRIPT" "$@"

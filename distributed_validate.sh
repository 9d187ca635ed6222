#!/usr/bin/env bash
# Usage: ./distributed_validate.sh NUM_PROCS [validate.py args...]
# One node: torchrun starts NUM_PROCS processes (one per GPU; gloo on CPU).
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR (and MASTER_PORT) on every node, e.g.
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 ./distributed_train.sh 8 /data/imagenet --model dfformer_s18 --pretrained
# Under SLURM or MPI launch train.py directly (srun / mpirun): timm reads their rank variables.
set -euo pipefail
NUM_PROC=$1
shift
HERE=$(cd "$(dirname "$0")" && pwd)
PYTHON=${PYTHON:-$( [ -x "$HERE/.venv/bin/python" ] && echo "$HERE/.venv/bin/python" || echo python3 )}
exec "$PYTHON" -m torch.distributed.run --nproc_per_node="$NUM_PROC" \
    --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${MASTER_PORT:-29500}" \
    "$HERE/validate.py" "$@"

#!/usr/bin/env bash
#SBATCH --job-name=dfformer
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=8
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=8
#SBATCH --time=24:00:00
#SBATCH --signal=USR1@120
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=slurm-%x-%j.out
# Usage: sbatch [--nodes=N ...] tools/slurm_train.sh DATA --experiment NAME [train.py args...]
#
# train.py on every task of the job (one per GPU, all nodes; ranks from SLURM's variables, rank 0's
# node as the rendezvous), with --resume auto, so the first start and every requeue run the same
# command. 120 s before the time limit SLURM sends SIGUSR1 to the tasks (a preemption sends SIGTERM):
# train.py finishes its step, writes a step-exact checkpoint and exits with code 75; this script
# then requeues the job, which continues at the next step. Exit code 0: the run is complete.
#
# Environment: PYTHON (default: the repo's .venv/bin/python, else python3), MASTER_PORT (default
# from the job id), SLURM_TRAIN_DRY_RUN=1 (print the command instead of running it).
set -uo pipefail
EXIT_PREEMPTED=75  # engine/resume.py

usage() { sed -n '12,21p' "$0" | sed 's/^# \{0,1\}//'; }
fail() { echo "slurm_train.sh: error: $*" >&2; exit 2; }

# under sbatch, $0 is a copy in SLURM's spool: the repo is the submit folder
if [ -n "${SLURM_SUBMIT_DIR:-}" ] && [ -f "$SLURM_SUBMIT_DIR/train.py" ]; then
    REPO=$SLURM_SUBMIT_DIR
else
    REPO=$(cd "$(dirname "$0")/.." && pwd)
fi

experiment=''
prev=''
for arg in "$@"; do
    case "$arg" in
        -h|--help) usage; exit 0 ;;
        --experiment=*) experiment=${arg#--experiment=} ;;
        --resume|--resume=*) fail "do not pass --resume: every start runs with --resume auto (the run folder's newest checkpoint)" ;;
    esac
    [ "$prev" = '--experiment' ] && experiment=$arg
    prev=$arg
done
[ -n "$experiment" ] || fail 'pass --experiment NAME: the run folder (<output>/NAME) that every requeue of the job continues'

PYTHON=${PYTHON:-$( [ -x "$REPO/.venv/bin/python" ] && echo "$REPO/.venv/bin/python" || echo python3 )}
CMD=(srun --kill-on-bad-exit=0 "$PYTHON" "$REPO/train.py" "$@" --resume auto)

if [ "${SLURM_TRAIN_DRY_RUN:-0}" = 1 ]; then
    printf '%q ' "${CMD[@]}"; echo
    exit 0
fi
[ -n "${SLURM_JOB_ID:-}" ] || fail 'not in a SLURM job: submit it with sbatch tools/slurm_train.sh ... (or set SLURM_TRAIN_DRY_RUN=1 to see the command)'

# rendezvous for torch.distributed's env:// init (timm reads the ranks from SLURM_PROCID etc.)
MASTER_ADDR=$(scontrol show hostnames "${SLURM_JOB_NODELIST:-localhost}" | head -n 1)
export MASTER_ADDR
export MASTER_PORT=${MASTER_PORT:-$((20000 + SLURM_JOB_ID % 20000))}

echo "slurm_train.sh: job $SLURM_JOB_ID (restart ${SLURM_RESTART_COUNT:-0}) on ${SLURM_JOB_NUM_NODES:-1} node(s): ${CMD[*]}"
"${CMD[@]}"
rc=$?
if [ "$rc" = "$EXIT_PREEMPTED" ]; then
    echo "slurm_train.sh: train.py stopped at a checkpoint (exit $rc): requeueing job $SLURM_JOB_ID"
    scontrol requeue "$SLURM_JOB_ID"
fi
exit "$rc"

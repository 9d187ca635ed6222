"""Step-exact stop and resume for train.py on clusters: the stop signal (SIGTERM / SIGUSR1, what
SLURM, Kubernetes and torchrun send before they kill), every rank's random state, and the
checkpoint `--resume auto` continues from."""
import glob
import logging
import os
import pickle
import random
import shlex
import signal
from contextlib import contextmanager
from typing import Optional

import numpy as np
import torch

_logger = logging.getLogger(__name__)

# Exit code of a run stopped by a signal after writing its checkpoint: EX_TEMPFAIL (sysexits.h,
# "try again later"), distinct from 0 (finished), 1 (a crash), 2 (a user error) and 128+N (killed
# by signal N), so a job script requeues on exactly this code (tools/slurm_train.sh).
EXIT_PREEMPTED = 75

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)

# The files of a run folder that a run can continue from (model_best is a copy of one of them).
RESUMABLE = ('last.pth.tar', 'recovery-*.pth.tar', 'checkpoint-*.pth.tar')

_received = {'signal': None}


class Preempted(Exception):
    """The run stopped on a signal after writing a checkpoint; the message says where and how to resume."""
    exit_code = EXIT_PREEMPTED


def _on_signal(signum, frame):
    # only a flag: the step in progress finishes and all ranks stop at the same step
    _received['signal'] = signum


@contextmanager
def stop_on_signals():
    """While the block runs, SIGTERM / SIGUSR1 only request a stop (see StopFlag, stop_requested). Installed
    before the loaders start workers, which inherit it: a signal sent to the whole process group
    then does not kill them under the main process."""
    previous = {s: signal.signal(s, _on_signal) for s in STOP_SIGNALS}
    _received['signal'] = None
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def stop_requested(device: torch.device, distributed: bool) -> bool:
    """Whether any rank received a stop signal: one blocking MAX all-reduce of the flag per call, on
    the training device (gloo on CPU, NCCL on CUDA), so every rank decides alike. Once an epoch
    (after its evaluation); the steps use StopFlag, which does not wait."""
    if not distributed:
        return _received['signal'] is not None
    flag = torch.tensor([0 if _received['signal'] is None else 1], dtype=torch.int32, device=device)
    torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
    return bool(flag.item())


class StopFlag:
    """The per-step stop check of the training loop, without a blocking collective per step.

    Single process: the flag itself, no collective. Several: each step issues an asynchronous MAX
    all-reduce of this rank's flag (a CPU tensor, on a gloo group of its own made once, beside the
    training's NCCL or gloo group), and the next step waits for it and reads it: by then it has long
    arrived (the ranks meet in every step's gradient all-reduce), and the training device is never
    waited on. Every rank reads the same value for the same step, so all stop after the same step:
    the step after the one in which the signal came (one step later than a blocking check).
    Call drain() before any other collective that must not overlap it (a checkpoint's broadcast,
    destroying the process groups)."""

    def __init__(self, distributed: bool):
        self.distributed = distributed
        self.group = torch.distributed.new_group(backend='gloo') if distributed else None  # (a collective)
        self._work, self._flag = None, None

    def poll(self) -> bool:
        """Whether to stop after this step (call once per step, on every rank)."""
        if not self.distributed:
            return _received['signal'] is not None
        stop = self.drain()
        self._flag = torch.tensor([0 if _received['signal'] is None else 1], dtype=torch.int32)
        self._work = torch.distributed.all_reduce(self._flag, op=torch.distributed.ReduceOp.MAX, group=self.group,
                                                  async_op=True)
        return stop

    def drain(self) -> bool:
        """Wait for the all-reduce in flight, if any: whether any rank had a stop signal when it was issued."""
        if self._work is None:
            return False
        self._work.wait()
        self._work = None
        return bool(self._flag.numpy()[0])  # (a host tensor, read in place: no device wait)


def signal_name() -> str:
    return signal.Signals(_received['signal']).name if _received['signal'] is not None else 'a signal on another rank'


def rng_state() -> dict:
    """Python, numpy, torch and CUDA random states of this process, as tensors and plain types
    (checkpoints load with weights_only=True)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {'python': random.getstate(), 'numpy': (kind, keys.tolist(), pos, has_gauss, gauss),
             'torch': torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict):
    version, internal, gauss = state['python']
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, gauss = state['numpy']
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


def gather_to_primary(obj, args) -> Optional[list]:
    """Every rank's `obj` in rank order on rank 0 (None on the others); a collective."""
    if not args.distributed:
        return [obj]
    out = [None] * args.world_size if args.rank == 0 else None
    torch.distributed.gather_object(obj, out, dst=0)
    return out


def read_resume_state(path: str) -> Optional[dict]:
    """The step-exact position and per-rank state a checkpoint of ours holds (None for others)."""
    checkpoint = torch.load(path, map_location='cpu', weights_only=True, mmap=True)
    return checkpoint.get('resume') if isinstance(checkpoint, dict) else None


def _complete(path: str) -> str:
    """'' if `path` is a readable training checkpoint, else why not."""
    try:
        checkpoint = torch.load(path, map_location='cpu', weights_only=True, mmap=True)
    except (RuntimeError, OSError, EOFError, ValueError, pickle.UnpicklingError) as e:
        return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if not isinstance(checkpoint, dict) or 'state_dict' not in checkpoint or 'optimizer' not in checkpoint:
        return 'not a training checkpoint'
    return ''


def find_resume_checkpoint(run_dir: str) -> str:
    """The newest complete checkpoint in `run_dir` ('' if none): newest by modification time; one
    that cannot be read (a truncated copy, a full disk) is skipped with a warning for the one before."""
    paths = {p for pattern in RESUMABLE for p in glob.glob(os.path.join(glob.escape(run_dir), pattern))}
    # newest first; at equal times last.pth.tar (its numbered copies are hard links to it)
    for path in sorted(paths, key=lambda p: (os.path.getmtime(p), os.path.basename(p) == 'last.pth.tar'),
                       reverse=True):
        problem = _complete(path)
        if not problem:
            return path
        _logger.warning(f'--resume auto: skipping {path}, it cannot be read ({problem}); trying the one before')
    return ''


def resume_command(argv, experiment: str) -> str:
    """The command line that continues this run: the same options with --resume auto (and the
    run folder's --experiment, if it was generated)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == '--resume':
            skip = True
        elif not arg.startswith('--resume='):
            out.append(arg)
    if not any(a == '--experiment' or a.startswith('--experiment=') for a in out):
        out += ['--experiment', experiment]
    return shlex.join(['python', 'train.py'] + out + ['--resume', 'auto'])

"""Stop and resume for the segmentation / detection tools (mmengine 0.10.7) as for train.py: on
SIGTERM / SIGUSR1 (engine.resume) every rank finishes its iteration, that iteration's checkpoint
is written through the atomic file backend, the `last_checkpoint` pointer (which `--resume`
without a path follows) atomically too, and the tool exits with engine.resume.EXIT_PREEMPTED.
tools/mm/train.py puts these in the config (`use_preemption`)."""
import torch
from mmengine.device import get_device
from mmengine.dist import barrier, is_distributed
from mmengine.hooks import CheckpointHook, Hook
from mmengine.hooks import checkpoint_hook as checkpoint_hook_module
from mmengine.registry import HOOKS, LOOPS
from mmengine.runner import EpochBasedTrainLoop

from engine.files import atomic_open
from engine.resume import Preempted, signal_name, stop_requested


def _open_pointer(path, mode='r', *args, **kwargs):
    """open() for CheckpointHook's module: the files it writes (only the pointer) appear complete."""
    return atomic_open(path, mode, *args, **kwargs) if 'w' in mode else open(path, mode, *args, **kwargs)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """mmengine's CheckpointHook, but its `last_checkpoint` pointer is written through a temporary
    file as the checkpoints are (mmengine writes it with a plain open(): a kill then can leave it
    empty, and `--resume` without a path finds nothing)."""

    def _save_checkpoint_with_step(self, runner, step, meta):
        checkpoint_hook_module.open = _open_pointer  # that module's `open`, for this call only
        try:
            super()._save_checkpoint_with_step(runner, step, meta)
        finally:
            del checkpoint_hook_module.open

    def save_iteration(self, runner) -> str:
        """The checkpoint of the iteration just done (iter_N.pth, also in an epoch-based loop, with
        the epoch in progress as its epoch: ResumableEpochBasedTrainLoop continues inside it)."""
        template = self.filename_tmpl
        if self.by_epoch:
            self.filename_tmpl = 'iter_{}.pth'
        try:
            self._save_checkpoint_with_step(runner, runner.iter + 1, dict(epoch=runner.epoch, iter=runner.iter + 1))
        finally:
            self.filename_tmpl = template
        return self.last_ckpt


@HOOKS.register_module()
class StopOnSignalHook(Hook):
    """After each training iteration: if any rank received a stop signal (one collective flag),
    save this iteration's checkpoint and end every rank with engine.resume.Preempted."""
    priority = 'LOWEST'  # after the checkpoint and logger hooks of the same iteration

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if not stop_requested(torch.device(get_device()), is_distributed()):
            return
        saver = next((h for h in runner.hooks if isinstance(h, AtomicCheckpointHook)), None)
        path = saver.save_iteration(runner) if saver else 'none (the config has no CheckpointHook)'
        barrier()  # rank 0's file is complete before any rank exits (torchrun then stops the others)
        raise Preempted(f'stopped by {signal_name()} after iteration {runner.iter + 1}: checkpoint {path}; continue '
                        'with the same command and --resume (no path: the work dir\'s last checkpoint)')


@LOOPS.register_module()
class ResumableEpochBasedTrainLoop(EpochBasedTrainLoop):
    """mmengine's epoch loop, but a run resumed from a checkpoint written mid-epoch skips the
    iterations of that epoch already done (mmengine would do them again; its iteration loop skips)."""

    def run_iter(self, idx, data_batch):
        if idx < self._iter - self._epoch * len(self.dataloader):
            return
        super().run_iter(idx, data_batch)


def use_preemption(cfg):
    """The config's checkpoint hook, loop and hooks for stop-and-resume (see the module doc)."""
    if cfg.default_hooks.get('checkpoint', {}).get('type') in ('CheckpointHook', CheckpointHook):
        cfg.default_hooks.checkpoint.type = 'AtomicCheckpointHook'
    if cfg.train_cfg.get('type') in ('EpochBasedTrainLoop', EpochBasedTrainLoop) or (
            'type' not in cfg.train_cfg and cfg.train_cfg.get('by_epoch')):
        cfg.train_cfg.type = 'ResumableEpochBasedTrainLoop'
        cfg.train_cfg.pop('by_epoch', None)
    cfg.custom_hooks = list(cfg.get('custom_hooks') or []) + [dict(type='StopOnSignalHook')]

"""Checkpoints and run records that a killed run never leaves half-written."""
import csv
import logging
import os
import shutil
from contextlib import contextmanager

import torch
from timm import utils

from .files import atomic_open, atomic_path


def summary_rows_before(path: str, epoch: int):
    """Keep summary.csv rows of epochs < `epoch` (a resumed run writes the later ones again)."""
    if not os.path.isfile(path):
        return
    with open(path, newline='') as f:
        rows = list(csv.DictReader(f))
    with atomic_open(path, newline='') as f:
        if rows:
            writer = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
            writer.writeheader()
            writer.writerows(r for r in rows if int(r['epoch']) < epoch)


class _InfoAsDebug(logging.Filter):
    """Passes a logger's INFO records on as DEBUG (shown only where DEBUG is enabled)."""

    def filter(self, record):
        if record.levelno != logging.INFO:
            return True
        record.levelno, record.levelname = logging.DEBUG, 'DEBUG'
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


@contextmanager
def _info_as_debug(logger: logging.Logger):
    demote = _InfoAsDebug()
    logger.addFilter(demote)
    try:
        yield
    finally:
        logger.removeFilter(demote)


def plain_args(args) -> dict:
    """The parsed options as plain types (checkpoints then load with weights_only=True)."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(args).items()
            if isinstance(v, (int, float, str, bool, list, tuple, type(None)))}


class AtomicCheckpointSaver(utils.CheckpointSaver):
    """timm's saver, but a checkpoint file is only ever replaced by a complete one (write to a
    temp file, fsync, rename; links go to a temp name first), `args` is stored as a plain
    dict so checkpoints load with weights_only=True, and each checkpoint carries `resume_state`
    (set by train.py before each save: the position to continue from and every rank's random
    state, see engine.resume) so that a run resumes from any of them step-exactly."""
    resume_state = None

    def _replace(self, src, dst):
        os.replace(src, dst)

    def _track_checkpoint(self, *args, **kwargs):
        # timm logs its whole checkpoint list at INFO after each epoch (up to --checkpoint-hist
        # lines, each time): DEBUG here, so the training log shows the training
        with _info_as_debug(logging.getLogger(utils.CheckpointSaver.__module__)):
            super()._track_checkpoint(*args, **kwargs)

    def _duplicate(self, src, dst):
        with atomic_path(dst) as tmp:
            try:
                os.link(src, tmp)
            except OSError:
                shutil.copy2(src, tmp)

    def _save(self, save_path, epoch, metric=None):
        state = {
            'epoch': epoch,
            'arch': self.args['model'],
            'args': self.args,
            'state_dict': utils.get_state_dict(self.model, self.unwrap_fn),
            'optimizer': self.optimizer.state_dict(),
            'version': 2,
            'saver': self.state_dict(epoch, metric),
        }
        if self.amp_scaler is not None:
            state[self.amp_scaler.state_dict_key] = self.amp_scaler.state_dict()
        if self.model_ema is not None:
            state['state_dict_ema'] = utils.get_state_dict(self.model_ema, self.unwrap_fn)
        if metric is not None:
            state['metric'] = metric
        if self.resume_state is not None:
            state['resume'] = self.resume_state
        # (timm renames save_path over the checkpoint; a full disk is one line, the old one stays)
        with atomic_path(save_path, needed=_nbytes(state), what=f'the checkpoint of epoch {epoch}') as tmp, \
                open(tmp, 'wb') as f:
            torch.save(state, f)


def _nbytes(obj) -> int:
    """Bytes of the tensors in a (nested) checkpoint state: about the size of its file."""
    if isinstance(obj, torch.Tensor):
        return obj.nelement() * obj.element_size()
    if isinstance(obj, dict):
        return sum(_nbytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_nbytes(v) for v in obj)
    return 0

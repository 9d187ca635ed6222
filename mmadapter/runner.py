"""What the segmentation and detection tools (tools/mm/, linked as segmentation/tools and
detection/tools) share: their common options, config loading with up-front checks, a Runner
that loads checkpoints strictly, and atomic file writes. The task (mmseg or mmdet) is the
config's own `default_scope`. Atomic writes, the writable-folder probe and the one-line error
exit are engine's (one implementation for the scripts and these tools)."""
import argparse
import logging
import os
import os.path as osp
import pickle
import re

import torch
from mmengine.config import Config, DictAction
from mmengine.fileio import LocalBackend, register_backend
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner
from mmengine.runner.checkpoint import _load_checkpoint  # (mmengine 0.10 exports no public alias)

from engine.cli import errors_as_one_line, one_line
from engine.files import DiskFullError, atomic_open, write_problem
from models import CheckpointError
from models.checkpoint import first_line, fit_problems

from .compat import runner_checkpoints_loadable, use_gloo_without_cuda


class ConfigError(ValueError):
    """A config, path or option on the command line that cannot be used; the message says why."""


class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend, but a file only ever appears complete: checkpoints and
    dumped results are written to a temporary file, fsynced and renamed over the target."""

    def put(self, obj: bytes, filepath) -> None:
        self._replace_with(filepath, 'wb', obj)

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        self._replace_with(filepath, 'w', obj, encoding=encoding)

    @staticmethod
    def _replace_with(filepath, mode: str, obj, **kwargs):
        filepath = os.fspath(filepath)
        os.makedirs(osp.dirname(osp.abspath(filepath)), exist_ok=True)
        with atomic_open(filepath, mode, **kwargs) as f:
            f.write(obj)


register_backend('local', AtomicLocalBackend, force=True, prefixes='')


class StrictRunner(Runner):
    """mmengine's Runner, but a checkpoint to test or resume from must fit the model exactly
    (mmengine only warns, and a checkpoint of another model then tests as mIoU 0)."""

    def load_checkpoint(self, filename, map_location='cpu', strict=False, revise_keys=((r'^module.', ''),)):
        try:
            with runner_checkpoints_loadable():
                return super().load_checkpoint(filename, map_location, strict=True, revise_keys=list(revise_keys))
        except (RuntimeError, OSError, EOFError, ValueError, KeyError, pickle.UnpicklingError) as e:
            # mmengine lists every key on one line (thousands of characters for another model's
            # checkpoint): say how many are missing / unexpected and name the first few instead
            problems = self._fit_problems(filename, revise_keys)
            if problems:
                raise CheckpointError(f'{filename} does not fit the config\'s model: {problems}; is it a checkpoint '
                                      'of another config?') from None
            reason = str(e).replace('The model and loaded state dict do not match exactly\n', '').strip()
            raise CheckpointError(f'{filename} does not fit the config\'s model or cannot be read '
                                  f'({first_line(reason)}); is it a checkpoint of another config?') from None

    def _fit_problems(self, filename, revise_keys) -> str:
        """What keeps the checkpoint from loading strictly, as models.checkpoint.fit_problems says
        it ('' if it cannot be read or fits)."""
        try:
            with runner_checkpoints_loadable():
                checkpoint = _load_checkpoint(filename, map_location='cpu')
        except Exception:  # (unreadable: the caller says so)
            return ''
        state_dict = checkpoint.get('state_dict', checkpoint) if isinstance(checkpoint, dict) else {}
        for pattern, replacement in revise_keys:
            state_dict = {re.sub(pattern, replacement, k): v for k, v in state_dict.items()}
        model = self.model.module if is_model_wrapper(self.model) else self.model
        return fit_problems(model.state_dict(), {k: v for k, v in state_dict.items() if isinstance(v, torch.Tensor)})


def add_common_args(p: argparse.ArgumentParser):
    p.add_argument('--work-dir', help='where logs and checkpoints go (default ./work_dirs/<config name>)')
    p.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                   help='override config entries, e.g. model.backbone.init_cfg=None')
    p.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    p.add_argument('--local_rank', '--local-rank', type=int, default=0)


def check_writable_folder(path: str, what: str = 'work dir', option: str = '--work-dir'):
    """Check that the folder `path` (the `what` of command-line `option`) takes files, and create it."""
    if osp.exists(path) and not osp.isdir(path):
        raise ConfigError(f'{what} {path} is a file: pass a folder with {option}')
    problem = write_problem(path)
    if problem:
        raise ConfigError(f'{what} {path} ({option}): {problem}')
    os.makedirs(path, exist_ok=True)


def _check_data_roots(cfg: Config, loaders):
    for loader in loaders:
        dataset = (cfg.get(loader) or {}).get('dataset') or {}
        root = dataset.get('data_root')
        if root and not osp.isdir(root):
            raise ConfigError(
                f'{loader}.dataset.data_root {root} does not exist: put the data there (see segmentation/README.md '
                f'or detection/README.md) or pass --cfg-options {loader}.dataset.data_root=/path/to/data')


def load_config(args, loaders=(), writes: bool = True) -> Config:
    """The config with --cfg-options, --launcher and --work-dir applied, the data folders of
    `loaders` (e.g. 'train_dataloader') checked and, if the tool `writes`, its work dir."""
    if not osp.isfile(args.config):
        raise ConfigError(f'config {args.config} does not exist')
    cfg = Config.fromfile(args.config)
    cfg.merge_from_dict(args.cfg_options)
    if cfg.get('default_scope') not in ('mmseg', 'mmdet'):
        raise ConfigError(f"{args.config} sets no default_scope 'mmseg' or 'mmdet': inherit mmseg's or mmdet's "
                          'default_runtime.py')
    cfg.launcher = args.launcher
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or osp.join(
        './work_dirs', osp.splitext(osp.basename(args.config))[0])
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        if cfg.get(loader) and cfg[loader].get('num_workers') == 0:
            cfg[loader].persistent_workers = False  # else torch refuses num_workers=0
    if writes:
        check_writable_folder(cfg.work_dir)
    _check_data_roots(cfg, loaders)
    use_gloo_without_cuda(cfg, args.launcher)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return cfg


def set_mixed_precision(cfg: Config, amp: bool):
    """--amp turns mmengine's AmpOptimWrapper on; it needs a GPU (mmengine 0.10.7), so without
    one a config that asks for it trains in float32, with a warning."""
    if amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if cfg.optim_wrapper.get('type') == 'AmpOptimWrapper' and not torch.cuda.is_available():
        print_log('mixed precision needs a GPU (mmengine 0.10.7 AmpOptimWrapper): training in float32',
                  logger='current', level=logging.WARNING)
        cfg.optim_wrapper.type = 'OptimWrapper'
        cfg.optim_wrapper.pop('loss_scale', None)
        cfg.optim_wrapper.pop('dtype', None)


def _user_error_line(error: BaseException):
    """The one line for a user's mistake, or None for a bug (which keeps its traceback)."""
    if not isinstance(error, AssertionError):
        return one_line(error)
    text = str(error)
    # an unreadable image, raised by mmcv's LoadImageFromFile (also from a loader worker, which
    # wraps the message in 'Caught AssertionError in DataLoader worker process ...')
    if isinstance(error, AssertionError) and 'failed to load image' in text:
        line = [line for line in text.splitlines() if 'failed to load image:' in line][-1]
        return line.replace('AssertionError:', '').strip() + ': remove or replace the file'
    return None


def user_errors_as_one_line(*more):
    """Run a tool's main: a user's mistake ends in one line on stderr and exit code 2 (an error of
    `more`, e.g. engine.resume.Preempted, in one line and its own exit code)."""
    return errors_as_one_line((ConfigError, CheckpointError, DiskFullError, AssertionError) + more, _user_error_line)

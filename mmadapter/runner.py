"""What the segmentation and detection tools (tools/mm/, linked as segmentation/tools and
detection/tools) share: their common options and config loading. The task (mmseg or mmdet) is
the config's own `default_scope`."""
import argparse
import os
import os.path as osp

from mmengine.config import Config, DictAction

from .compat import use_gloo_without_cuda


class ConfigError(ValueError):
    """A config or path on the command line that cannot be used; the message says why."""


def add_common_args(p: argparse.ArgumentParser):
    p.add_argument('--work-dir', help='where logs and checkpoints go (default ./work_dirs/<config name>)')
    p.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                   help='override config entries, e.g. model.backbone.init_cfg=None')
    p.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    p.add_argument('--local_rank', '--local-rank', type=int, default=0)


def load_config(args) -> Config:
    """The config with --cfg-options, --launcher and --work-dir applied."""
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
    use_gloo_without_cuda(cfg, args.launcher)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return cfg

#!/usr/bin/env python3
"""Evaluate a segmentor or detector checkpoint.

    python segmentation/tools/test.py CONFIG CHECKPOINT [--work-dir D] [--cfg-options k=v ...]
"""
import argparse
import os.path as osp
import sys

from mmengine.runner import Runner

from mmadapter.compat import runner_checkpoints_loadable
from mmadapter.runner import ConfigError, add_common_args, load_config


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('config')
    p.add_argument('checkpoint')
    add_common_args(p)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if not osp.isfile(args.checkpoint):
        raise ConfigError(f'checkpoint {args.checkpoint} does not exist')
    cfg = load_config(args)
    cfg.load_from = args.checkpoint
    # The checkpoint holds every weight: no ImageNet download for the backbone.
    cfg.model.backbone.init_cfg = None
    runner = Runner.from_cfg(cfg)
    with runner_checkpoints_loadable():
        return runner.test()


if __name__ == '__main__':
    try:
        main()
    except ConfigError as e:
        sys.exit(f'error: {e}')

#!/usr/bin/env python3
"""Evaluate a segmentor or detector checkpoint.

    python segmentation/tools/test.py CONFIG CHECKPOINT [--work-dir D] [--cfg-options k=v ...]
"""
import argparse
import os.path as osp

from mmadapter.runner import ConfigError, StrictRunner, add_common_args, load_config, user_errors_as_one_line


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
    cfg = load_config(args, loaders=('test_dataloader',))
    cfg.load_from = args.checkpoint
    # The checkpoint holds every weight: no ImageNet download for the backbone.
    cfg.model.backbone.init_cfg = None
    return StrictRunner.from_cfg(cfg).test()


if __name__ == '__main__':
    with user_errors_as_one_line():
        main()

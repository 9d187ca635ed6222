#!/usr/bin/env python3
"""Train a segmentor (Semantic FPN, mmseg) or a detector (RetinaNet / Mask R-CNN, mmdet).

    python segmentation/tools/train.py CONFIG [--work-dir D] [--resume [CKPT]] [--amp]
        [--seed S] [--deterministic] [--cfg-options k=v ...] [--launcher pytorch]
"""
import argparse
import logging
import sys

import torch
from mmengine.logging import print_log
from mmengine.runner import Runner

from mmadapter.compat import runner_checkpoints_loadable
from mmadapter.runner import ConfigError, add_common_args, load_config


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('config')
    add_common_args(p)
    p.add_argument('--resume', nargs='?', const='auto', default=None,
                   help='resume from CHECKPOINT, or from the latest one in the work dir when no path is given')
    p.add_argument('--amp', action='store_true', help='mixed precision (fp16 with dynamic loss scaling; GPU only)')
    p.add_argument('--seed', type=int, default=None)
    p.add_argument('--deterministic', action='store_true')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args)
    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if cfg.optim_wrapper.get('type') == 'AmpOptimWrapper' and not torch.cuda.is_available():
        print_log('mixed precision needs a GPU (mmengine 0.10.7 AmpOptimWrapper): training in float32',
                  logger='current', level=logging.WARNING)
        cfg.optim_wrapper.type = 'OptimWrapper'
        cfg.optim_wrapper.pop('loss_scale', None)
        cfg.optim_wrapper.pop('dtype', None)
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume:
        cfg.resume, cfg.load_from = True, args.resume
    if args.seed is not None or args.deterministic:
        cfg.randomness = dict(seed=args.seed, deterministic=args.deterministic)
    runner = Runner.from_cfg(cfg)
    with runner_checkpoints_loadable():
        runner.train()
    return runner


if __name__ == '__main__':
    try:
        main()
    except ConfigError as e:
        sys.exit(f'error: {e}')

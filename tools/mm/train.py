#!/usr/bin/env python3
"""Train a segmentor (Semantic FPN, mmseg) or a detector (RetinaNet / Mask R-CNN, mmdet).

    python segmentation/tools/train.py CONFIG [--work-dir D] [--resume [CKPT]] [--amp]
        [--seed S] [--deterministic] [--cfg-options k=v ...] [--launcher pytorch]
"""
import argparse

from mmadapter.runner import StrictRunner, add_common_args, load_config, set_mixed_precision, user_errors_as_one_line


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
    cfg = load_config(args, loaders=('train_dataloader', 'val_dataloader'))
    set_mixed_precision(cfg, args.amp)
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume:
        cfg.resume, cfg.load_from = True, args.resume
    if args.seed is not None or args.deterministic:
        cfg.randomness = dict(seed=args.seed, deterministic=args.deterministic)
    runner = StrictRunner.from_cfg(cfg)
    runner.train()
    return runner


if __name__ == '__main__':
    with user_errors_as_one_line():
        main()

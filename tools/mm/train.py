#!/usr/bin/env python3
"""Train a segmentor (Semantic FPN, mmseg) or a detector (RetinaNet / Mask R-CNN, mmdet).

    .venv/bin/python segmentation/tools/train.py CONFIG [--work-dir D] [--resume [CKPT]] [--amp]
        [--seed S] [--deterministic] [--cfg-options k=v ...] [--launcher pytorch]

On SIGTERM / SIGUSR1 the iteration in progress finishes, its checkpoint is written and the tool
exits with code 75; the same command with --resume (no path) continues at the next iteration.
"""
import argparse

from engine.resume import Preempted, stop_on_signals
from mmadapter.preempt import use_preemption
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
    use_preemption(cfg)
    runner = StrictRunner.from_cfg(cfg)
    with stop_on_signals():  # before the loader workers start: they inherit it
        runner.train()
    return runner


if __name__ == '__main__':
    with user_errors_as_one_line(Preempted):
        main()

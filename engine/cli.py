"""Command-line options shared by train.py and validate.py (one definition each), and the
wrapper that turns a user's mistake into one line on stderr."""
import argparse
import logging
import sys
from typing import Callable, Sequence, Tuple

import timm
import torch

import models
from models import CheckpointError

from .data import DataError


class UsageError(ValueError):
    """A bad option value or combination; the message says what to pass instead."""


# Errors of the user's input or data: one line and exit code 2, never a traceback.
USER_ERRORS: Tuple[type, ...] = (UsageError, DataError, CheckpointError)


def add_data_args(p: argparse.ArgumentParser, splits: Sequence[Tuple[str, str]]):
    g = p.add_argument_group('data')
    g.add_argument('data', nargs='?', default=None, help='ImageNet-style folder with train/ and val/')
    g.add_argument('--data-dir', default=None, help='same as the positional data folder')
    g.add_argument('--dataset', '-d', default='', help="'' (folder), 'digits' (built-in) or a timm dataset name")
    for flag, default in splits:
        g.add_argument(flag, default=default)
    g.add_argument('--class-map', default='', help='file of class names, one per line, giving their order')


def add_model_args(p: argparse.ArgumentParser):
    g = p.add_argument_group('model')
    g.add_argument('--model', '-m', default='dfformer_s18')
    g.add_argument('--pretrained', action='store_true', help="the authors' released ImageNet weights")
    g.add_argument('--num-classes', type=int, default=None, help='default: the data set class count')
    g.add_argument('--img-size', type=int, default=None)
    g.add_argument('--input-size', type=int, nargs=3, default=None, metavar=('C', 'H', 'W'))
    g.add_argument('--crop-pct', type=float, default=None)
    g.add_argument('--mean', type=float, nargs='+', default=None)
    g.add_argument('--std', type=float, nargs='+', default=None)
    g.add_argument('--interpolation', default='')
    g.add_argument('--channels-last', action='store_true')


def add_runtime_args(p: argparse.ArgumentParser, batch_size: int):
    g = p.add_argument_group('runtime')
    g.add_argument('-b', '--batch-size', type=int, default=batch_size, help='per process')
    g.add_argument('-j', '--workers', type=int, default=4)
    g.add_argument('--amp', '--native-amp', dest='amp', action='store_true', help='mixed precision (autocast)')
    g.add_argument('--amp-dtype', default='float16', choices=['float16', 'bfloat16'])
    g.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    g.add_argument('--pin-mem', action='store_true')
    g.add_argument('--no-prefetcher', action='store_true')
    g.add_argument('--dist-backend', default=None)
    g.add_argument('--dist-url', default=None)
    g.add_argument('--local_rank', '--local-rank', type=int, default=0, help=argparse.SUPPRESS)


def check_common_args(parser: argparse.ArgumentParser, args: argparse.Namespace):
    """Resolve the data folder and check the model name (argparse's one-line errors)."""
    if args.data and args.data_dir and args.data != args.data_dir:
        parser.error('give the data folder once (positional or --data-dir)')
    args.data_dir = args.data_dir or args.data
    if not timm.is_model(args.model):
        parser.error(f'unknown model {args.model!r}; DFFormer models: {", ".join(sorted(models.MODEL_ARCHS))}')


def run_cli(main: Callable, logger_name: str, errors: Tuple[type, ...] = USER_ERRORS):
    """Run `main()`; a user error ends in one line on stderr and exit code 2."""
    try:
        main()
    except errors as e:
        logging.getLogger(logger_name).error(f'error: {e}')
        sys.exit(2)

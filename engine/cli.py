"""Command-line options shared by the scripts (one definition each), the checks of their values
before any work (each script calls those of the options it has: `check_model_args`,
`check_data_args`, `check_train_args`, `check_results_file`; engine.weights checks the weights
options), and the wrapper that turns a user's mistake into one line on stderr (`run_cli`)."""
import argparse
import math
import os
import re
import sys
from contextlib import contextmanager
from typing import Callable, Optional, Sequence, Tuple

import timm
import torch

import models
from models import MIN_IMG_SIZE, CheckpointError

from .data import DataError
from .files import write_problem
from .resume import find_resume_checkpoint


class UsageError(ValueError):
    """A bad option value or combination; the message says what to pass instead."""


# Errors of the user's input or data: one line and exit code 2, never a traceback.
USER_ERRORS: Tuple[type, ...] = (UsageError, DataError, CheckpointError)

# Files a train.py run leaves in its output folder; a folder with any of them holds a run.
RUN_FILES = ('last.pth.tar', 'summary.csv')


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but an error is one line (argparse prints the whole usage first)."""

    def error(self, message: str):
        self.exit(2, f'{self.prog}: error: {message}\n')


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


# Numeric options and their valid ranges (smallest, largest or None); options a parser lacks
# and unset (None) values are skipped. Floats must also be finite.
NUMERIC_RANGES = {
    'batch_size': (1, None), 'validation_batch_size': (1, None), 'workers': (0, None), 'num_classes': (1, None),
    'epochs': (1, None), 'warmup_epochs': (0, None), 'cooldown_epochs': (0, None), 'patience_epochs': (0, None),
    'log_interval': (1, None), 'checkpoint_hist': (1, None), 'recovery_interval': (0, None),
    'max_steps_per_epoch': (0, None), 'mixup_off_epoch': (0, None),
    'lr': (0., None), 'warmup_lr': (0., None), 'min_lr': (0., None), 'weight_decay': (0., None),
    'momentum': (0., None), 'clip_grad': (0., None), 'opt_eps': (0., None), 'decay_rate': (0., None),
    'drop': (0., 1.), 'drop_path': (0., 1.), 'smoothing': (0., 1.), 'reprob': (0., 1.), 'hflip': (0., 1.),
    'vflip': (0., 1.), 'mixup': (0., None), 'cutmix': (0., None), 'mixup_prob': (0., 1.),
    'mixup_switch_prob': (0., 1.), 'color_jitter': (0., None), 'model_ema_decay': (0., 1.),
}


def _flag(parser: argparse.ArgumentParser, dest: str) -> str:
    for action in parser._actions:
        if action.dest == dest and action.option_strings:
            return max(action.option_strings, key=len)
    return dest


def _check_numbers(parser: argparse.ArgumentParser, args: argparse.Namespace):
    for dest, (low, high) in NUMERIC_RANGES.items():
        value = getattr(args, dest, None)
        if value is None:
            continue
        if isinstance(value, float) and not math.isfinite(value) or value < low or high is not None and value > high:
            what = 'a whole number' if isinstance(low, int) else 'a finite number'
            bound = f'>= {low:g}' if high is None else f'from {low:g} to {high:g}'
            value = f'{value:g}' if isinstance(value, float) else value
            default = parser.get_default(dest)
            parser.error(f'{_flag(parser, dest)} {value}: must be {what} {bound}'
                         + (f' (the default is {default})' if default is not None else ''))
    if getattr(args, 'crop_pct', None) is not None and not (math.isfinite(args.crop_pct) and args.crop_pct > 0):
        parser.error(f'--crop-pct {args.crop_pct}: must be a finite number > 0 (e.g. 0.875 or 1.0)')
    if getattr(args, 'img_size', None) is not None and args.img_size < MIN_IMG_SIZE:
        parser.error(f'--img-size {args.img_size}: must be at least {MIN_IMG_SIZE} pixels (e.g. --img-size 224)')
    if getattr(args, 'input_size', None) is not None:
        c, h, w = args.input_size
        if c < 1 or min(h, w) < MIN_IMG_SIZE:
            parser.error(f'--input-size {c} {h} {w}: needs 1 or more channels and height and width of at least '
                         f'{MIN_IMG_SIZE} pixels (e.g. --input-size 3 224 224)')


def check_input_file(parser: argparse.ArgumentParser, flag: str, path: str, folder_ok: bool = False,
                     example: str = ''):
    """`path` given to `flag` is an existing file (or, `folder_ok`, a folder); unset is fine."""
    if not path or os.path.isfile(path) or folder_ok and os.path.isdir(path):
        return
    if os.path.isdir(path):
        parser.error(f'{flag} {path} is a folder: pass a file'
                     + (f' (e.g. {os.path.join(path, example)})' if example else ''))
    parser.error(f'{flag} {path}: no such file')


def check_model_args(parser: argparse.ArgumentParser, args: argparse.Namespace):
    """--model is a timm model (with released weights for --pretrained), and every numeric option
    the parser has is in range."""
    if not timm.is_model(args.model):
        parser.error(f'unknown model {args.model!r}; DFFormer models: {", ".join(sorted(models.MODEL_ARCHS))}')
    if getattr(args, 'pretrained', False) and not getattr(args, 'pretrained_path', '') and \
            not timm.models.is_model_pretrained(args.model):
        released = sorted(m for m in models.MODEL_ARCHS if timm.models.is_model_pretrained(m))
        parser.error(f'--pretrained: {args.model} has no released weights (released: {", ".join(released)}); '
                     'drop --pretrained')
    _check_numbers(parser, args)


def check_data_args(parser: argparse.ArgumentParser, args: argparse.Namespace):
    """The data folder is given once (positional or --data-dir; resolved into args.data_dir), and
    --class-map exists."""
    if args.data and args.data_dir and args.data != args.data_dir:
        parser.error('give the data folder once (positional or --data-dir)')
    args.data_dir = args.data_dir or args.data
    check_input_file(parser, '--class-map', args.class_map)


def check_train_args(parser: argparse.ArgumentParser, args: argparse.Namespace):
    """train.py: --resume and --initial-checkpoint exist, the output folder can be written, and a
    folder holding another run is not overwritten. `--resume auto` becomes the run folder's newest
    complete checkpoint, or '' (a fresh start) when it has none: a requeued job runs the same
    command every time. --pretrained-path exists, and is not given with --initial-checkpoint."""
    auto = args.resume == 'auto'
    if auto and not args.experiment:
        parser.error('--resume auto needs --experiment NAME: the run folder (<output>/NAME) it continues, '
                     'the same on every start')
    check_input_file(parser, '--resume', '' if auto else args.resume, example='last.pth.tar')
    check_input_file(parser, '--initial-checkpoint', args.initial_checkpoint, example='model_best.pth.tar')
    check_input_file(parser, '--pretrained-path', args.pretrained_path)
    if args.pretrained_path and args.initial_checkpoint:
        parser.error('give the starting weights once: --pretrained-path FILE (adapted to this run: classifier, '
                     'input size) or --initial-checkpoint FILE (loaded as it is)')
    run_dir = os.path.join(args.output, args.experiment) if args.experiment else args.output
    for path in (args.output, run_dir):
        if os.path.exists(path) and not os.path.isdir(path):
            parser.error(f'--output {path} is a file, not a folder: pass a folder (--output, --experiment)')
    problem = write_problem(run_dir)
    if problem:
        parser.error(f'--output {run_dir}: {problem}')
    if auto:
        args.resume = find_resume_checkpoint(run_dir) if os.path.isdir(run_dir) else ''
    elif args.experiment:
        held = [f for f in RUN_FILES if os.path.exists(os.path.join(run_dir, f))]
        if held and not (args.resume and os.path.samefile(os.path.dirname(os.path.abspath(args.resume)), run_dir)):
            parser.error(f'{run_dir} already holds a training run ({", ".join(held)}): continue it with --resume '
                         'auto (or a checkpoint of it), or pass another --experiment (or remove the folder) to '
                         'start a new one')


def check_results_file(parser: argparse.ArgumentParser, path: str):
    """The results file `path` (--results-file) can be written."""
    if os.path.isdir(path):
        parser.error(f'--results-file {path} is a folder: pass a file name (e.g. {os.path.join(path, "r.json")})')
    folder = os.path.dirname(os.path.abspath(path))
    problem = write_problem(folder)
    if problem:
        parser.error(f'--results-file {folder}: {problem}')


def resolve_num_classes(num_classes, data_classes) -> int:
    """--num-classes, by default the data's class count (1000 when the data set does not say);
    fewer classes than the data has is an error (its labels would be out of range)."""
    if num_classes is None:
        return data_classes or 1000
    if data_classes and num_classes < data_classes:
        raise UsageError(f'--num-classes {num_classes}: the data has {data_classes} classes; '
                         f'pass --num-classes {data_classes} (or leave it out)')
    return num_classes


def one_line(error: BaseException) -> str:
    """The message of `error` on one line. An exception raised in a DataLoader worker comes back as
    the same type with the worker's whole traceback as its message ('Caught DataError in DataLoader
    worker process 0. Original Traceback ...'): that is reduced to the original message."""
    text = str(error).strip()
    if 'Original Traceback' in text:
        last = [line for line in text.splitlines() if line.strip()][-1].strip()
        # the traceback's last line: '<module>.<Class>: <message>'
        for name in (f'{type(error).__module__}.{type(error).__qualname__}', type(error).__qualname__):
            if last.startswith(name + ': '):
                return last[len(name) + 2:]
        return re.sub(r'^[\w.]+: ', '', last)
    return ' '.join(line.strip() for line in text.splitlines()) or type(error).__name__


@contextmanager
def errors_as_one_line(errors: Tuple[type, ...], line: Callable[[BaseException], Optional[str]] = one_line,
                       prefix: str = ''):
    """Run the block; an exception of `errors` ends in '<prefix>error: <line(e)>' on stderr and exit
    code 2 (or '<prefix><line(e)>' and the exception's own `exit_code`, e.g. engine.resume.Preempted).
    An exception with `lines` (several problems, e.g. inference.py's unreadable images) gets one
    such line for each. Where `line` gives None the exception is a bug and keeps its traceback."""
    try:
        yield
    except errors as e:
        text = line(e)
        if text is None:
            raise
        code = getattr(e, 'exit_code', 2)
        sys.stdout.flush()
        for each in getattr(e, 'lines', None) or [text]:
            print(f'{prefix}{"error: " if code == 2 else ""}{each}', file=sys.stderr, flush=True)
        sys.exit(code)


def run_cli(main: Callable, errors: Tuple[type, ...] = USER_ERRORS):
    """Run `main()`; a user error ends in one line on stderr and exit code 2."""
    with errors_as_one_line(errors, prefix=f'{os.path.basename(sys.argv[0])}: '):
        main()

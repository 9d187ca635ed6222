"""Command-line options shared by the scripts (one definition each), the checks of their values
before any work (each script calls those of the options it has: `check_model_args`,
`check_data_args`, `check_train_args`, `check_results_file`; engine.weights checks the weights
options), and the wrapper that turns a user's mistake into one line on stderr (`run_cli`)."""
import argparse
import importlib.util
import math
import os
import re
import sys
from contextlib import contextmanager
from typing import Callable, Optional, Sequence, Tuple

import timm
import torch
from timm.utils.distributed import world_info_from_env

import models
from models import MIN_IMG_SIZE, CheckpointError

from .data import DataError
from .files import DiskFullError, HeldLock, try_lock, write_problem
from .resume import find_resume_checkpoint


class UsageError(ValueError):
    """A bad option value or combination; the message says what to pass instead."""


# Errors of the user's input, data or disk: one line and exit code 2, never a traceback.
USER_ERRORS: Tuple[type, ...] = (UsageError, DataError, CheckpointError, DiskFullError)

# Files a train.py run leaves in its output folder; a folder with any of them holds a run.
RUN_FILES = ('last.pth.tar', 'summary.csv')
# The lock a train.py run holds on its --experiment folder while it runs (engine.files.try_lock).
RUN_LOCK = 'train.lock'


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


# timm's interpolation names ('': the model's pretrained config's)
INTERPOLATIONS = ('', 'bilinear', 'bicubic', 'nearest', 'box', 'hamming', 'lanczos')


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
    g.add_argument('--interpolation', default='', choices=INTERPOLATIONS, help="default: the model's")
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


class Above(float):
    """A lower bound of NUMERIC_RANGES that the value must exceed (other bounds may be reached)."""


class Below(float):
    """An upper bound of NUMERIC_RANGES that the value must stay under."""


# Numeric options of every script and their valid ranges (smallest, largest or None); options a
# parser lacks and unset (None) values are skipped, each value of a list is checked. Floats must
# also be finite.
NUMERIC_RANGES = {
    'batch_size': (1, None), 'validation_batch_size': (1, None), 'workers': (0, None), 'num_classes': (1, None),
    'epochs': (1, None), 'warmup_epochs': (0, None), 'cooldown_epochs': (0, None), 'patience_epochs': (0, None),
    'log_interval': (1, None), 'checkpoint_hist': (1, None), 'recovery_interval': (0, None),
    'max_steps_per_epoch': (0, None), 'mixup_off_epoch': (0, None),
    'lr': (0., None), 'warmup_lr': (0., None), 'min_lr': (0., None), 'weight_decay': (0., None),
    'momentum': (0., None), 'clip_grad': (0., None), 'opt_eps': (0., None), 'decay_rate': (0., None),
    'drop': (0., 1.), 'drop_path': (0., 1.), 'smoothing': (0., Below(1.)), 'reprob': (0., 1.), 'hflip': (0., 1.),
    'vflip': (0., 1.), 'mixup': (0., None), 'cutmix': (0., None), 'mixup_prob': (0., 1.),
    'mixup_switch_prob': (0., 1.), 'color_jitter': (0., None), 'model_ema_decay': (0., 1.),
    # train.py's that timm or torch would reject deep inside (a label smoothing of 1 above, a step
    # schedule of 0 epochs, numpy's seed range, a beta of 1, ...)
    'seed': (0, 2 ** 32 - 1), 'decay_epochs': (Above(0.), None), 'lr_cycle_mul': (Above(0.), None),
    'lr_cycle_decay': (0., None), 'lr_noise': (0., None), 'lr_noise_pct': (0., 1.), 'lr_noise_std': (0., None),
    'layer_decay': (Above(0.), None), 'opt_betas': (0., Below(1.)), 'recount': (1, None),
    'scale': (Above(0.), 1.), 'ratio': (Above(0.), None), 'cutmix_minmax': (Above(0.), 1.), 'std': (Above(0.), None),
    # the other scripts'
    'topk': (1, None), 'log_freq': (1, None), 'max_images': (1, None), 'tol': (0., None), 'n': (1, None),
    'max_count': (1, None), 'max_size': (1., None), 'shards_multiple': (1, None), 'train_batch_size': (1, None),
    'repeats': (1, None),
    'iters': (1, None), 'threads': (0, None), 'shape': (MIN_IMG_SIZE, None),
}


def _flag(parser: argparse.ArgumentParser, dest: str) -> str:
    for action in parser._actions:
        if action.dest == dest and action.option_strings:
            return max(action.option_strings, key=len)
    return dest


def _number(value) -> str:
    return f'{value:g}' if isinstance(value, float) else str(value)


def _range_text(low, high) -> str:
    """'>= 0', '> 0', 'from 0 to 1', '>= 0 and < 1', ..."""
    lower = f'{">" if isinstance(low, Above) else ">="} {_number(low)}'
    if high is None:
        return lower
    if not isinstance(low, Above) and not isinstance(high, Below):
        return f'from {_number(low)} to {_number(high)}'
    return f'{lower} and {"<" if isinstance(high, Below) else "<="} {_number(high)}'


def _in_range(value, low, high) -> bool:
    if isinstance(value, float) and not math.isfinite(value):
        return False
    return (value > low if isinstance(low, Above) else value >= low) and (
        high is None or (value < high if isinstance(high, Below) else value <= high))


def check_numbers(parser: argparse.ArgumentParser, args: argparse.Namespace):
    """Every number option of the parser (NUMERIC_RANGES, sizes) is in its range: else one line
    naming the option and the valid range (parser.error)."""
    for dest, (low, high) in NUMERIC_RANGES.items():
        value = getattr(args, dest, None)
        if value is None:
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        if not all(_in_range(v, low, high) for v in values):
            what = 'a whole number' if isinstance(low, int) else 'a finite number'
            if len(values) > 1:
                what = 'whole numbers' if isinstance(low, int) else 'finite numbers'
            default = parser.get_default(dest)
            default = ' '.join(map(_number, default)) if isinstance(default, (list, tuple)) else default
            parser.error(f'{_flag(parser, dest)} {" ".join(map(_number, values))}: must be {what} '
                         f'{_range_text(low, high)}' + (f' (the default is {default})' if default is not None else ''))
    if getattr(args, 'crop_pct', None) is not None and not (math.isfinite(args.crop_pct) and args.crop_pct > 0):
        parser.error(f'--crop-pct {args.crop_pct}: must be a finite number > 0 (e.g. 0.875 or 1.0)')
    sizes = getattr(args, 'img_size', None)
    sizes = sizes if isinstance(sizes, list) else [] if sizes is None else [sizes]  # (benchmark.py: several)
    if any(size < MIN_IMG_SIZE for size in sizes):
        parser.error(f'--img-size {" ".join(map(str, sizes))}: must be at least {MIN_IMG_SIZE} pixels '
                     '(e.g. --img-size 224)')
    if getattr(args, 'input_size', None) is not None:
        c, h, w = args.input_size
        if c < 1 or min(h, w) < MIN_IMG_SIZE:
            parser.error(f'--input-size {c} {h} {w}: needs 1 or more channels and height and width of at least '
                         f'{MIN_IMG_SIZE} pixels (e.g. --input-size 3 224 224)')
    channels = args.input_size[0] if getattr(args, 'input_size', None) else 3
    for dest in ('mean', 'std'):
        values = getattr(args, dest, None)
        if values is not None and len(values) not in (1, channels):
            parser.error(f'--{dest} {" ".join(map(_number, values))}: give 1 value (for every channel) or '
                         f'{channels}, one per channel')


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
    check_numbers(parser, args)


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
    command every time. --pretrained-path exists, and is not given with --initial-checkpoint.
    Last, the --experiment folder's lock (RUN_LOCK) is taken, as args.run_lock (a HeldLock the run
    holds to its end: `with args.run_lock`): a second run of the folder, a fresh start or a resume,
    is refused while the first runs."""
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
    # taken before the folder's files are looked at: two runs started at once see them one at a time
    args.run_lock = _lock_run_folder(parser, args, run_dir)
    if auto:
        args.resume = find_resume_checkpoint(run_dir) if os.path.isdir(run_dir) else ''
    elif args.experiment:
        held = [f for f in RUN_FILES if os.path.exists(os.path.join(run_dir, f))]
        if held and not (args.resume and os.path.samefile(os.path.dirname(os.path.abspath(args.resume)), run_dir)):
            args.run_lock.release()
            parser.error(f'{run_dir} already holds a training run ({", ".join(held)}): continue it with --resume '
                         'auto (or a checkpoint of it), or pass another --experiment (or remove the folder) to '
                         'start a new one')


def _lock_run_folder(parser: argparse.ArgumentParser, args: argparse.Namespace, run_dir: str) -> HeldLock:
    """The --experiment folder's lock, taken by rank 0 (of the environment torchrun / SLURM / MPI
    set, before the processes meet) or a one-line error naming the run that holds it."""
    if not args.experiment or world_info_from_env()[1] != 0:
        return HeldLock(None)  # (a generated folder name is new; the other ranks share rank 0's)
    os.makedirs(run_dir, exist_ok=True)
    lock, holder = try_lock(os.path.join(run_dir, RUN_LOCK))
    if lock is None:
        holder = f' (process {holder})' if holder else ''
        if args.resume:
            parser.error(f'--resume {args.resume}: {run_dir} is in use by a training run now{holder}: resume it '
                         'once that run has ended (or stop it first)')
        parser.error(f'--experiment {args.experiment}: {run_dir} is in use by a training run now{holder}: wait for '
                     'it to end, or pass another --experiment')
    return lock


def _given(parser: argparse.ArgumentParser, args: argparse.Namespace, dests: Sequence[str]) -> str:
    """The options of `dests` set to other than their default, as on a command line."""
    out = []
    for dest in dests:
        value = getattr(args, dest, None)
        if value is not None and value != parser.get_default(dest) and value is not False:
            text = '' if value is True else ' '.join(map(_number, value)) if isinstance(value, (list, tuple)) else (
                _number(value))
            out.append(f'{_flag(parser, dest)} {text}'.strip())
    return ' '.join(out)


# What timm's optimizer factory and the optimizers read (optimizer_kwargs), and the schedulers.
OPTIMIZER_OPTIONS = ('opt', 'lr', 'momentum', 'opt_eps', 'opt_betas', 'weight_decay')
SCHEDULE_OPTIONS = ('sched', 'sched_on_updates', 'epochs', 'decay_epochs', 'decay_milestones', 'decay_rate',
                    'warmup_epochs', 'cooldown_epochs', 'patience_epochs', 'lr_noise', 'lr_noise_pct',
                    'lr_noise_std', 'lr_cycle_mul', 'lr_cycle_decay', 'lr_cycle_limit', 'lr_k_decay', 'min_lr',
                    'warmup_lr', 'warmup_prefix')
# (what a failed optimizer, scheduler or transform build raises)
_BUILD_ERRORS = (ValueError, TypeError, KeyError, IndexError, AssertionError, ImportError, RuntimeError,
                 ZeroDivisionError)


def check_train_options(parser: argparse.ArgumentParser, args: argparse.Namespace):
    """train.py: the option combinations timm or torch would reject deep inside (mid-run, with a
    traceback): each is one line naming the options. The optimizer and the schedule are built once
    for a dummy parameter and stepped, so whatever they reject is found before any work."""
    from timm.data import create_transform
    from timm.optim import create_optimizer_v2, get_optimizer_info, list_optimizers, optimizer_kwargs
    from timm.scheduler import create_scheduler_v2, scheduler_kwargs

    if (args.mixup > 0 or args.cutmix > 0 or args.cutmix_minmax) and args.batch_size % 2:
        parser.error(f'--batch-size {args.batch_size} with --mixup / --cutmix: timm mixes the images of a batch in '
                     f'pairs, so the batch size must be even (e.g. --batch-size {args.batch_size + 1})')
    if args.cutmix_minmax and not args.cutmix_minmax[0] < args.cutmix_minmax[1]:
        parser.error(f'--cutmix-minmax {" ".join(map(_number, args.cutmix_minmax))}: pass the smallest share of the '
                     'image to cut, then the largest (e.g. --cutmix-minmax 0.2 0.8)')
    name = args.opt.lower().split('_')[-1]  # ('lookahead_adamw')
    if name not in list_optimizers():
        parser.error(f'--opt {args.opt}: unknown optimizer; e.g. sgd, momentum, adamw, lamb, lion (all: '
                     'timm.optim.list_optimizers())')
    info = get_optimizer_info(name)
    if args.opt_betas and info.has_betas and len(args.opt_betas) != info.num_betas:
        parser.error(f'--opt-betas {" ".join(map(_number, args.opt_betas))}: --opt {args.opt} takes '
                     f'{info.num_betas} betas')
    if info.has_momentum and (info.defaults or {}).get('nesterov') and args.momentum == 0:
        parser.error(f'--opt {args.opt} --momentum 0: timm\'s {name} is SGD with Nesterov momentum, which needs '
                     '--momentum > 0; pass --opt momentum for SGD without Nesterov momentum')
    if args.sched == 'plateau' and args.sched_on_updates:
        parser.error('--sched plateau --sched-on-updates: the plateau schedule steps once per epoch (on the eval '
                     'metric); drop --sched-on-updates')
    kwargs = optimizer_kwargs(cfg=args)
    kwargs.pop('layer_decay', None)  # (needs the model's layers; its range is checked above)
    try:
        optimizer = create_optimizer_v2(torch.nn.Linear(1, 1), **kwargs)
    except _BUILD_ERRORS as e:
        parser.error(f'--opt {args.opt} {_given(parser, args, OPTIMIZER_OPTIONS[1:])}'.strip() + f': {one_line(e)}')
    try:
        scheduler, _ = create_scheduler_v2(optimizer, **scheduler_kwargs(args), updates_per_epoch=2)
        if scheduler is not None:
            scheduler.step_update(1, 0.)
            scheduler.step(1, 0.)
    except _BUILD_ERRORS as e:
        parser.error(f'--sched {args.sched} {_given(parser, args, SCHEDULE_OPTIONS[1:])}'.strip()
                     + f': {one_line(e)}')
    if args.aa:
        try:
            create_transform(32, is_training=True, auto_augment=args.aa)
        except _BUILD_ERRORS as e:
            parser.error(f'--aa {args.aa}: {one_line(e) if str(e) else "not an augmentation policy"}; e.g. --aa '
                         'rand-m9-mstd0.5-inc1 (RandAugment), v0 (AutoAugment) or augmix-m5-w4-d2 (AugMix)')
    if args.torchcompile:
        import torch._dynamo as dynamo
        backends = dynamo.list_backends(exclude_tags=())
        if args.torchcompile not in backends:
            parser.error(f'--torchcompile {args.torchcompile}: unknown backend; e.g. inductor (the default) or '
                         'aot_eager (all: torch._dynamo.list_backends())')
    if args.log_wandb and importlib.util.find_spec('wandb') is None:
        parser.error('--log-wandb needs the wandb package: pip install wandb (or drop --log-wandb)')


def check_device(parser: argparse.ArgumentParser, args: argparse.Namespace):
    """--device names a device this machine has."""
    try:
        device = torch.device(args.device)
    except RuntimeError:
        parser.error(f'--device {args.device}: not a device; pass cpu, cuda or cuda:N (GPU N)')
    backend = getattr(torch, device.type, None) if device.type != 'cpu' else None
    if backend is not None and hasattr(backend, 'is_available') and not backend.is_available():
        parser.error(f'--device {args.device}: {device.type.upper()} is not available here; pass --device cpu')
    if device.type == 'cuda' and device.index is not None and device.index >= torch.cuda.device_count():
        parser.error(f'--device {args.device}: this machine has {torch.cuda.device_count()} GPUs '
                     f'(cuda:0 to cuda:{torch.cuda.device_count() - 1})')


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
            # one write per line: print() writes the text and its newline apart, and the lines of
            # processes sharing a pipe (torchrun's ranks) then run into each other
            sys.stderr.write(f'{prefix}{"error: " if code == 2 else ""}{each}\n')
            sys.stderr.flush()
        sys.exit(code)


def run_cli(main: Callable, errors: Tuple[type, ...] = USER_ERRORS):
    """Run `main()`; a user error ends in one line on stderr and exit code 2."""
    with errors_as_one_line(errors, prefix=f'{os.path.basename(sys.argv[0])}: '):
        main()

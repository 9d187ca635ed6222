#!/usr/bin/env python3
"""ImageNet training of DFFormer / CDFFormer with timm (the authors' recipe and flags).

    ./distributed_train.sh 8 /path/to/imagenet --model dfformer_s18 -b 128 -j 8 --opt adamw \
        --epochs 300 --sched cosine --native-amp --img-size 224 --drop-path 0.2 --lr 1e-3 \
        --weight-decay 0.05 --aa rand-m9-mstd0.5-inc1 --smoothing 0.1 --mixup 0.8 --cutmix 1.0 \
        --reprob 0.25 --warmup-lr 1e-6 --warmup-epochs 20 --experiment DFFormer --task-name dfformer_s18
    .venv/bin/python train.py --dataset digits --model dfformer_s18 --img-size 64 ...   # built-in data, CPU
    .venv/bin/python train.py /my/folder --model dfformer_s18 --pretrained-path dfformer_s18.pth --img-size 384 ...
                                                            # fine-tune the released weights

A thin driver over timm's data pipeline, mixup, losses, optimizers, schedulers, EMA, checkpoint
saver and distributed helpers. Defaults not set by the command above are those of the authors'
script (timm 0.5.4: min-lr 1e-5, 10 cooldown epochs, random train interpolation, EMA decay 0.9998).
Outputs go to <output>/<experiment>/: args.yaml, summary.csv, last/model_best/top-N checkpoints,
and train.lock, which a run holds while it runs: a second run of the same --experiment (a fresh
start or a resume) is refused in one line meanwhile.
The log's first lines say the epochs (incl. cooldown), optimizer, lr, batch, input size and weights.

On SIGTERM or SIGUSR1 every rank finishes its step (several processes: the next one too), rank 0
writes a step-exact checkpoint and the run exits with code 75 (engine.resume.EXIT_PREEMPTED);
`--resume auto --experiment NAME` continues it at the next step with the same data order and
random state (see docs/training.md, "Preemption and `--resume auto`").
"""
import argparse
import logging
import math
import os
import sys
import time
import warnings

import timm
import torch
import torch.nn as nn
import yaml
from timm import utils
from timm.data import FastCollateMixup, Mixup, create_loader, resolve_data_config
from timm.layers import to_2tuple
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from timm.optim import create_optimizer_v2, optimizer_kwargs
from timm.scheduler import create_scheduler_v2, scheduler_kwargs

from engine.cli import (
    INTERPOLATIONS,
    USER_ERRORS,
    ArgumentParser,
    UsageError,
    add_data_args,
    add_model_args,
    add_runtime_args,
    check_data_args,
    check_device,
    check_model_args,
    check_train_args,
    check_train_options,
    resolve_num_classes,
    run_cli,
)
from engine.data import build_dataset, check_same_classes, dataset_num_classes, use_resumable_sampler
from engine.evaluate import evaluate
from engine.files import atomic_open, no_space_as_error
from engine.resume import (
    Preempted,
    StopFlag,
    gather_to_primary,
    read_resume_state,
    resume_command,
    rng_state,
    set_rng_state,
    signal_name,
    stop_on_signals,
    stop_requested,
)
from engine.runtime import amp_autocast_for, model_img_size, setup_device
from engine.saver import AtomicCheckpointSaver, plain_args, summary_rows_before
from engine.weights import check_checkpoint_file, classifier_rows, pretrained_file_weights
from engine.weights import create_model as create_timm_model
from models import CheckpointError, load_checkpoint
from models.checkpoint import checkpoint_state_dict, first_line, has_ema

_logger = logging.getLogger('train')


class NonFiniteLossError(RuntimeError):
    pass


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_args(p, splits=[('--train-split', 'train'), ('--val-split', 'validation')])
    add_model_args(p)
    add_runtime_args(p, batch_size=128)
    g = p.add_argument_group('training model')
    g.add_argument('--initial-checkpoint', default='', metavar='FILE',
                   help='initialise the model from this file as it is (its class count; filters resized to the '
                   'input size), e.g. a run of yours; to fine-tune on another class count: --pretrained-path')
    g.add_argument('--pretrained-path', default='', metavar='FILE',
                   help='load this file as the pretrained weights, adapted as timm adapts released ones: the '
                   'classifier re-initialised for another class count, filters resized for another input size '
                   '(e.g. the released dfformer_s18.pth; a train.py checkpoint gives its EMA weights if it has them)')
    g.add_argument('--resume', default='', help='resume model, optimizer, scaler, EMA, epoch and step from this '
                   "checkpoint; 'auto': the run folder's newest complete checkpoint, or a fresh start if none")
    g.add_argument('--no-resume-opt', action='store_true')
    g.add_argument('-vb', '--validation-batch-size', type=int, default=None)
    g.add_argument('--grad-checkpointing', action='store_true')
    g.add_argument('--torchcompile', nargs='?', const='inductor', default=None)
    g = p.add_argument_group('optimizer')
    g.add_argument('--opt', default='sgd')
    g.add_argument('--opt-eps', type=float, default=None)
    g.add_argument('--opt-betas', type=float, nargs='+', default=None)
    g.add_argument('--momentum', type=float, default=0.9)
    g.add_argument('--weight-decay', type=float, default=2e-5)
    g.add_argument('--clip-grad', type=float, default=None)
    g.add_argument('--clip-mode', default='norm', choices=['norm', 'value', 'agc'])
    g.add_argument('--layer-decay', type=float, default=None)
    g = p.add_argument_group('schedule')
    g.add_argument('--sched', default='cosine', choices=['cosine', 'tanh', 'step', 'multistep', 'plateau', 'poly',
                                                         'constant', 'wsd', 'rsqrt'])
    g.add_argument('--sched-on-updates', action='store_true')
    g.add_argument('--lr', type=float, default=0.05)
    g.add_argument('--lr-noise', type=float, nargs='+', default=None)
    g.add_argument('--lr-noise-pct', type=float, default=0.67)
    g.add_argument('--lr-noise-std', type=float, default=1.0)
    g.add_argument('--lr-cycle-mul', type=float, default=1.0)
    g.add_argument('--lr-cycle-decay', type=float, default=0.5)
    g.add_argument('--lr-cycle-limit', type=int, default=1)
    g.add_argument('--lr-k-decay', type=float, default=1.0)
    g.add_argument('--warmup-lr', type=float, default=1e-4)
    g.add_argument('--min-lr', type=float, default=1e-5)
    g.add_argument('--epochs', type=int, default=300)
    g.add_argument('--decay-epochs', type=float, default=100)
    g.add_argument('--decay-milestones', type=int, nargs='+', default=[90, 180, 270])
    g.add_argument('--warmup-epochs', type=int, default=3)
    g.add_argument('--warmup-prefix', action='store_true')
    g.add_argument('--cooldown-epochs', type=int, default=10)
    g.add_argument('--patience-epochs', type=int, default=10)
    g.add_argument('--decay-rate', '--dr', type=float, default=0.1)
    g = p.add_argument_group('augmentation and regularisation')
    g.add_argument('--no-aug', action='store_true')
    g.add_argument('--scale', type=float, nargs=2, default=[0.08, 1.0], metavar=('MIN', 'MAX'))
    g.add_argument('--ratio', type=float, nargs=2, default=[3. / 4., 4. / 3.], metavar=('MIN', 'MAX'))
    g.add_argument('--hflip', type=float, default=0.5)
    g.add_argument('--vflip', type=float, default=0.)
    g.add_argument('--color-jitter', type=float, default=0.4)
    g.add_argument('--aa', default=None, help='e.g. rand-m9-mstd0.5-inc1 (RandAugment)')
    g.add_argument('--reprob', type=float, default=0.)
    g.add_argument('--remode', default='pixel', choices=['pixel', 'rand', 'const'])
    g.add_argument('--recount', type=int, default=1)
    g.add_argument('--mixup', type=float, default=0.)
    g.add_argument('--cutmix', type=float, default=0.)
    g.add_argument('--cutmix-minmax', type=float, nargs=2, default=None, metavar=('MIN', 'MAX'))
    g.add_argument('--mixup-prob', type=float, default=1.0)
    g.add_argument('--mixup-switch-prob', type=float, default=0.5)
    g.add_argument('--mixup-mode', default='batch', choices=['batch', 'pair', 'elem', 'half'])
    g.add_argument('--mixup-off-epoch', type=int, default=0)
    g.add_argument('--smoothing', type=float, default=0.1)
    g.add_argument('--train-interpolation', default='random', choices=('random',) + INTERPOLATIONS[1:])
    g.add_argument('--drop', '--head-dropout', dest='drop', type=float, default=0., help='MLP-head dropout')
    g.add_argument('--drop-path', type=float, default=None)
    g = p.add_argument_group('EMA')
    g.add_argument('--model-ema', action='store_true')
    g.add_argument('--model-ema-force-cpu', action='store_true')
    g.add_argument('--model-ema-decay', type=float, default=0.9998)
    g = p.add_argument_group('run')
    g.add_argument('--seed', type=int, default=42)
    g.add_argument('--log-interval', type=int, default=50,
                   help='log every N steps (an epoch shorter than 4 of these: each quarter epoch and every ~5 s)')
    g.add_argument('--recovery-interval', type=int, default=0)
    g.add_argument('--checkpoint-hist', type=int, default=10,
                   help='how many of the best epoch checkpoints to keep besides last.pth.tar (each holds the model '
                   'and optimizer: ~340 MB for dfformer_s18 with adamw); 1 for a small run')
    g.add_argument('--output', default='./output/train')
    g.add_argument('--experiment', default='')
    g.add_argument('--task-name', default='', help='run name for loggers (wandb); default: the experiment')
    g.add_argument('--eval-metric', default='top1', choices=['top1', 'top5', 'loss'])
    g.add_argument('--log-wandb', action='store_true')
    g.add_argument('--max-steps-per-epoch', type=int, default=0, help=argparse.SUPPRESS)  # smoke tests
    return p


def parse_args(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    check_data_args(parser, args)
    check_model_args(parser, args)
    check_device(parser, args)
    check_train_options(parser, args)
    check_train_args(parser, args)  # (last: it takes the run folder's lock)
    return args


def _size_flag(args) -> str:
    size = to_2tuple(model_img_size(args))
    return f'--img-size {size[0]}' if size[0] == size[1] else f'--input-size 3 {size[0]} {size[1]}'


def check_resume(args) -> dict:
    """Read the --resume checkpoint and check that it is a run of this model, input size and
    optimizer (before any work is done); returns its model weights for the class-count check."""
    checkpoint = check_checkpoint_file('--resume', args.resume, args.model)
    state_dict = checkpoint_state_dict(checkpoint, args.resume)
    saved = checkpoint.get('args') if isinstance(checkpoint.get('args'), dict) else None
    if saved is None:  # a plain state_dict: load_checkpoint checks the tensors' shapes
        return state_dict
    saved = argparse.Namespace(**{'model': args.model, 'img_size': None, 'input_size': None, **saved})
    where = f'--resume {args.resume}'
    size, saved_size = to_2tuple(model_img_size(args)), to_2tuple(model_img_size(saved))
    if tuple(size) != tuple(saved_size):
        raise UsageError(
            f'{where} was trained at {saved_size[0]}x{saved_size[1]} px, this run is set to {size[0]}x{size[1]}: '
            'a run cannot be resumed at another size (its filters and optimizer state are of that size); '
            f'pass {_size_flag(saved)}, or start a new run from its weights with --initial-checkpoint {args.resume}')
    saved_opt = getattr(saved, 'opt', None)
    if not args.no_resume_opt and saved_opt and saved_opt.lower() != args.opt.lower():
        raise UsageError(f'{where} was trained with --opt {saved_opt}, this run with --opt {args.opt}: its '
                         f'optimizer state does not fit; pass --opt {saved_opt}, or --no-resume-opt for a fresh one')
    return state_dict


def check_resume_classes(args, state_dict: dict, data_classes):
    """The resumed checkpoint's classifier has this run's class count."""
    head = state_dict.get('head.fc2.weight')
    if head is None or head.shape[0] == args.num_classes:
        return
    n = head.shape[0]
    hint = 'resume it on the data it was trained on' + (
        f' (or pass --num-classes {n} to keep its {n} classes)' if data_classes is None or n >= data_classes else '')
    raise UsageError(f'--resume {args.resume} has a {n}-class classifier, this run {args.num_classes} classes'
                     f'{" (the data)" if data_classes == args.num_classes else ""}: {hint}')


def check_initial_classes(args, state_dict: dict):
    """--initial-checkpoint loads as it is: its classifier has this run's class count."""
    n = classifier_rows(args.model, state_dict)
    if n is not None and n != args.num_classes:
        path = args.initial_checkpoint
        raise UsageError(f'--initial-checkpoint {path} has {n} classes, this run {args.num_classes}: to fine-tune on '
                         f'another class count, use --pretrained-path {path}')


def starting_weights(args, file_classes) -> str:
    """Where the model's weights come from (the run's first log lines)."""
    if args.resume:
        return f'{args.resume} (--resume)'
    if args.initial_checkpoint:
        return f'{args.initial_checkpoint} (--initial-checkpoint)'
    if args.pretrained_path:
        source = f'{args.pretrained_path} (--pretrained-path)'
    elif args.pretrained:
        source, file_classes = 'the released weights (--pretrained)', timm.models.get_pretrained_cfg_value(
            args.model, 'num_classes')
    else:
        return 'random init (no --pretrained-path / --pretrained)'
    if file_classes != args.num_classes:
        source += (f' with its {file_classes}-class classifier' if file_classes else ' with a classifier') + \
            f' re-initialised for {args.num_classes} classes'
    return source


def scheduled_epochs(args) -> int:
    """The epoch count timm's scheduler makes of the options (--epochs plus, for the cosine / tanh /
    poly schedules, --cooldown-epochs, and --warmup-epochs with --warmup-prefix): known before the
    model and its optimizer exist, for the run's first log line."""
    probe = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=args.lr)
    with warnings.catch_warnings():  # (the run's own scheduler warns, if there is anything to say)
        warnings.simplefilter('ignore')
        return create_scheduler_v2(probe, **scheduler_kwargs(args), updates_per_epoch=1)[1]


def _count(n: int, noun: str) -> str:
    return f'{n} {noun}' + ('' if n == 1 else 'es' if noun.endswith('s') else 's')


def log_plan(args, file_classes):
    """The run's first log lines: what it will do, in the values the options resolved to (the
    defaults are the authors', e.g. 10 cooldown epochs and SGD at lr 0.05: a fine-tuner sets them)."""
    epochs = scheduled_epochs(args)
    added = [f'--cooldown-epochs {args.cooldown_epochs}'] if args.cooldown_epochs else []
    if args.warmup_prefix and args.warmup_epochs:
        added.append(f'--warmup-epochs {args.warmup_epochs} (--warmup-prefix)')
    plus = f' plus {" and ".join(added)}' if added else ''
    if epochs == args.epochs:
        counted = ''
    elif epochs == args.epochs + args.cooldown_epochs + args.warmup_prefix * args.warmup_epochs:
        counted = f' (--epochs {args.epochs}{plus})'
    else:  # (a cyclic schedule)
        counted = f' (--epochs {args.epochs} in --lr-cycle-limit {args.lr_cycle_limit} cycles{plus})'
    warmup = f', {_count(args.warmup_epochs, "warmup epoch")} from {args.warmup_lr:g}' if args.warmup_epochs else ''
    size = to_2tuple(model_img_size(args))
    _logger.info(f'Plan: {args.model} for {_count(epochs, "epoch")}{counted}, optimizer {args.opt}, lr {args.lr:g} '
                 f'({args.sched} schedule{warmup}, min {args.min_lr:g}), weight decay {args.weight_decay:g}')
    _logger.info(f'Batch {args.batch_size} per process x {_count(args.world_size, "process")}, {size[0]}x{size[1]} '
                 f'px, {args.num_classes} classes; weights: {starting_weights(args, file_classes)}')


def create_model(args, num_classes: int) -> nn.Module:
    model = create_timm_model(
        args, '--pretrained-path', num_classes=num_classes, drop_rate=args.drop,
        drop_path_rate=args.drop_path or 0., img_size=model_img_size(args))
    if args.initial_checkpoint:
        load_checkpoint(model, args.initial_checkpoint)
    if args.grad_checkpointing:
        model.set_grad_checkpointing(True)
    return model


def resume_point(args, epoch: int, step: int, losses=None) -> dict:
    """What a checkpoint needs to continue at `step` of `epoch` exactly as an uninterrupted run
    would: the position and each rank's random state and running train loss (a collective: every
    rank calls it; None on ranks > 0). The scheduler is not stored: timm's are functions of the
    epoch and update count, recomputed on resume (so a resumed run may change --epochs)."""
    ranks = gather_to_primary({'rng': rng_state(), 'loss': [losses.sum, losses.count] if losses else [0., 0]}, args)
    return ranks and {'epoch': epoch, 'step': step, 'world_size': args.world_size, 'batch_size': args.batch_size,
                      'ranks': ranks}


def stop_run(args, checkpoint: str, epoch: int, step: int, argv, stop_flag=None):
    """After a stop signal: wait for rank 0's checkpoint (its path comes with the broadcast), then
    end every rank with one line naming it and the command that continues the run."""
    path = [checkpoint]
    if stop_flag is not None:
        stop_flag.drain()  # (its all-reduce in flight, before the groups go)
    if args.distributed:
        torch.distributed.broadcast_object_list(path, src=0)
        torch.distributed.destroy_process_group()
    path = path[0]
    raise Preempted(f'stopped by {signal_name()} after epoch {epoch} step {step}: checkpoint {path}; continue with: '
                    f'{resume_command(argv, os.path.basename(os.path.dirname(path)))}')


# In an epoch shorter than 4 --log-interval's (a small data set, e.g. the digits demo), a line at
# least this often (and each quarter epoch): --log-interval alone would log its first step only.
SHORT_EPOCH_LOG_SECONDS = 5.


def epoch_log_interval(num_batches: int, log_interval: int) -> int:
    """--log-interval, or a quarter of an epoch shorter than 4 of them (at least 4 lines an epoch)."""
    return max(1, min(log_interval, math.ceil(num_batches / 4)))


class StepLosses:
    """The epoch's running train loss without a device-to-host wait per step: each step's loss stays
    on the device (detached) until read() fetches all those pending in one transfer, at log steps,
    before any checkpoint and at the epoch's end. read() is also the non-finite-loss check: it
    raises NonFiniteLossError naming the first step whose loss was not finite. (Checked where it is
    read rather than one step late: reading the previous step's loss would still wait on the device
    every step, as a copy to the host waits for all the work queued before it, this step's backward
    included. A bad loss makes the run step on with NaN weights until the next read, none of which
    is saved.) The sums are those of a loss.item() per step: the same floats, added in the same order."""

    def __init__(self, epoch: int):
        self.epoch, self.meter, self.pending = epoch, utils.AverageMeter(), []

    def add(self, step: int, loss: torch.Tensor, n: int):
        self.pending.append((step, loss.detach(), n))

    def read(self) -> utils.AverageMeter:
        """The meter (val: the last step's loss; sum, count, avg: the epoch's) with every step added."""
        pending, self.pending = self.pending, []
        if pending:
            for (step, _, n), value in zip(pending, torch.stack([loss for _, loss, _ in pending]).tolist()):
                if not math.isfinite(value):
                    raise NonFiniteLossError(
                        f'loss is {value} at epoch {self.epoch} step {step}: lower --lr, add --clip-grad or check '
                        'the data; the last checkpoint is intact')
                self.meter.update(value, n)
        return self.meter


def train_one_epoch(epoch, model, loader, optimizer, loss_fn, args, device, lr_scheduler, saver, amp_autocast,
                    loss_scaler, model_ema, mixup_fn, num_batches, sampler=None, start_step=0, rank_state=None,
                    argv=(), stop_flag=None):
    if args.mixup_off_epoch and epoch >= args.mixup_off_epoch:
        if args.prefetcher and loader.mixup_enabled:
            loader.mixup_enabled = False
        elif mixup_fn is not None:
            mixup_fn.mixup_enabled = False
    model.train()
    # No device-to-host wait in a step but at its log line (the loss) and its checkpoint, if any:
    # the losses are read in batches (StepLosses), the stop flag a step late (StopFlag).
    step_losses, batch_time, data_time = StepLosses(epoch), utils.AverageMeter(), utils.AverageMeter()
    losses = step_losses.meter
    stop_flag = stop_flag or StopFlag(args.distributed)
    num_updates = epoch * num_batches + start_step
    # Random state of a resumed run: restored where the interrupted run saved it, i.e. before the
    # epoch's loader iterator is made (it draws a seed) at an epoch start, after it mid-epoch.
    if rank_state is not None and start_step == 0:
        set_rng_state(rank_state['rng'])
    batches = iter(loader)
    if start_step and sampler is None:
        for _ in range(start_step):  # an iterable data set cannot skip: read past the consumed batches
            next(batches)
    if rank_state is not None and start_step:
        set_rng_state(rank_state['rng'])
        losses.sum, losses.count = rank_state['loss']
        losses.avg = losses.sum / max(1, losses.count)
    interval = epoch_log_interval(num_batches, args.log_interval)
    end = logged = since = time.time()
    steps_since = 0  # (since: when the first of them began)
    for step, (input, target) in zip(range(start_step, num_batches), batches):
        if not steps_since:
            since = end
        data_time.update(time.time() - end)
        if not args.prefetcher:
            input, target = input.to(device), target.to(device)
            if mixup_fn is not None:
                input, target = mixup_fn(input, target)
        if args.channels_last:
            input = input.contiguous(memory_format=torch.channels_last)
        with amp_autocast():
            loss = loss_fn(model(input), target)
        optimizer.zero_grad(set_to_none=True)
        if loss_scaler is not None:
            loss_scaler(loss, optimizer, clip_grad=args.clip_grad, clip_mode=args.clip_mode,
                        parameters=model.parameters())
        else:
            loss.backward()
            if args.clip_grad is not None:
                utils.dispatch_clip_grad(model.parameters(), value=args.clip_grad, mode=args.clip_mode)
            optimizer.step()
        if model_ema is not None:
            model_ema.update(model, step=num_updates)
        num_updates += 1
        step_losses.add(step, loss, input.size(0))
        batch_time.update(time.time() - end)
        steps_since += 1
        last = step + 1 == num_batches
        if last or step % interval == 0 or step == start_step or (  # (a resumed epoch: its first step too)
                interval < args.log_interval and time.time() - logged >= SHORT_EPOCH_LOG_SECONDS):
            step_losses.read()  # (waits for the device: this step's loss)
            logged = time.time()
            # the rate over the steps since the last line: a step's own time is only that of queueing
            # its work on an accelerator, until a read like the one above waits for all of it
            step_time = max(logged - since, 1e-6) / steps_since
            lr = sum(g['lr'] for g in optimizer.param_groups) / len(optimizer.param_groups)
            eta = batch_time.avg * (num_batches - step - 1)
            if utils.is_primary(args):
                _logger.info(
                    f'Train: {epoch} [{step:>4d}/{num_batches} ({100. * (step + 1) / num_batches:>3.0f}%)]  '
                    f'Loss: {losses.val:#.3g} ({losses.avg:#.3g})  '
                    f'{input.size(0) * args.world_size / step_time:>7.2f}/s  LR: {lr:.3e}  '
                    f'Data: {data_time.val:.3f} ({data_time.avg:.3f})  ETA epoch: {eta:.0f}s')
            steps_since = 0
        if lr_scheduler is not None:
            # timm's schedulers keep `metric` (scheduler.metric) but none computes a rate from it in
            # step_update (plateau's ignores it): the average as last read, not a read per step
            lr_scheduler.step_update(num_updates=num_updates, metric=losses.avg)
        stop = stop_flag.poll()
        if stop or args.recovery_interval and (last or (step + 1) % args.recovery_interval == 0):
            state = resume_point(args, epoch, step + 1, step_losses.read())
            if saver is not None:
                saver.resume_state = state
                saver.save_recovery(epoch, batch_idx=step)
            if stop:
                stop_run(args, saver and saver.curr_recovery_file, epoch, step, argv, stop_flag)
        end = time.time()
    step_losses.read()  # (the last step logged it, unless the loader ran short)
    stop_flag.drain()  # a signal in the last step: seen after the evaluation (train())
    if args.distributed:
        loss_avg = utils.reduce_tensor(torch.tensor([losses.avg], device=device), args.world_size).item()
    else:
        loss_avg = losses.avg
    return {'loss': loss_avg}


def main(argv=None):
    if not logging.getLogger().handlers:  # (main() may run more than once in a process)
        utils.setup_default_logging()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    with args.run_lock, stop_on_signals():  # (the run folder's lock, released at the end: check_train_args)
        return train(args, argv)


def train(args, argv):
    # the checkpoint files are read before any work: an unreadable or foreign one stops here
    resume_state = check_resume(args) if args.resume else None
    initial_state = checkpoint_state_dict(check_checkpoint_file(
        '--initial-checkpoint', args.initial_checkpoint, args.model), args.initial_checkpoint) \
        if args.initial_checkpoint else None
    file_classes = classifier_rows(args.model, pretrained_file_weights(args)) if args.pretrained_path else None
    device = setup_device(args)
    utils.random_seed(args.seed, args.rank)

    # data first: its errors are the commonest and its class count sets the model's
    readers = dict(processes=args.world_size, workers=args.workers)
    dataset_train = build_dataset(args.dataset, args.data_dir, args.train_split, is_training=True,
                                  class_map=args.class_map, batch_size=args.batch_size, seed=args.seed, **readers)
    dataset_eval = build_dataset(args.dataset, args.data_dir, args.val_split, is_training=False,
                                 class_map=args.class_map, **readers)
    check_same_classes(dataset_train, dataset_eval, args.class_map)
    data_classes = dataset_num_classes(dataset_train)
    args.num_classes = resolve_num_classes(args.num_classes, data_classes)
    if resume_state is not None:
        check_resume_classes(args, resume_state, data_classes)
        del resume_state
    if initial_state is not None:
        check_initial_classes(args, initial_state)
        del initial_state
    if utils.is_primary(args):
        log_plan(args, file_classes)
    model = create_model(args, args.num_classes)
    if utils.is_primary(args):
        _logger.info(f'Model {args.model} created, param count: {sum(p.numel() for p in model.parameters())}')
    data_config = resolve_data_config(vars(args), model=model, verbose=utils.is_primary(args))
    model.to(device)
    if args.channels_last:
        model.to(memory_format=torch.channels_last)

    optimizer = create_optimizer_v2(model, **optimizer_kwargs(cfg=args))
    amp_autocast, amp_dtype = amp_autocast_for(args, device)
    loss_scaler = utils.NativeScaler(device=device.type) if amp_dtype == torch.float16 else None
    if amp_dtype is not None and utils.is_primary(args):
        _logger.info(f'Mixed precision: autocast {amp_dtype}' + (' with loss scaling' if loss_scaler else ''))

    resume_epoch, resume = None, None
    if args.resume:
        # one-line error for a foreign file; filters of another size are an error, not resized
        load_checkpoint(model, args.resume, resize_filters=False)
        try:
            resume_epoch = timm.models.resume_checkpoint(
                model, args.resume, optimizer=None if args.no_resume_opt else optimizer,
                loss_scaler=None if args.no_resume_opt else loss_scaler, log_info=utils.is_primary(args))
        except (ValueError, KeyError) as e:  # (torch's optimizer.load_state_dict)
            raise CheckpointError(
                f'--resume {args.resume}: its optimizer state does not fit this run ({first_line(e)}); resume '
                'with the optimizer options of the run (--opt, --layer-decay), or pass --no-resume-opt') from None
        resume = read_resume_state(args.resume)
        if resume and resume['step'] and (resume['world_size'], resume['batch_size']) != (
                args.world_size, args.batch_size):
            raise UsageError(
                f'--resume {args.resume} stopped mid-epoch with {resume["world_size"]} processes of batch '
                f'{resume["batch_size"]}, this run has {args.world_size} of batch {args.batch_size}: resume it with '
                'those, or from the end of its last epoch (--resume '
                f'{os.path.join(os.path.dirname(args.resume), "last.pth.tar")})')

    model_ema = None
    if args.model_ema:
        model_ema = utils.ModelEmaV3(model, decay=args.model_ema_decay,
                                     device='cpu' if args.model_ema_force_cpu else None)
        if args.resume and has_ema(args.resume):
            load_checkpoint(model_ema.module, args.resume, use_ema=True)
        elif args.resume:  # (a run resumed with EMA newly switched on)
            _logger.warning(f'{args.resume} has no EMA weights: the EMA starts from the resumed weights')

    if args.distributed:
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device] if device.type == 'cuda' else None)
    if args.torchcompile:
        model = torch.compile(model, backend=args.torchcompile)

    collate_fn, mixup_fn = None, None
    if args.mixup > 0 or args.cutmix > 0. or args.cutmix_minmax is not None:
        mixup_args = dict(
            mixup_alpha=args.mixup, cutmix_alpha=args.cutmix, cutmix_minmax=args.cutmix_minmax,
            prob=args.mixup_prob, switch_prob=args.mixup_switch_prob, mode=args.mixup_mode,
            label_smoothing=args.smoothing, num_classes=args.num_classes)
        if args.prefetcher:
            collate_fn = FastCollateMixup(**mixup_args)
        else:
            mixup_fn = Mixup(**mixup_args)
    loader_train = create_loader(
        dataset_train, input_size=data_config['input_size'], batch_size=args.batch_size, is_training=True,
        no_aug=args.no_aug, re_prob=args.reprob, re_mode=args.remode, re_count=args.recount,
        scale=args.scale, ratio=args.ratio, hflip=args.hflip, vflip=args.vflip, color_jitter=args.color_jitter,
        auto_augment=args.aa, interpolation=args.train_interpolation, mean=data_config['mean'],
        std=data_config['std'], num_workers=args.workers, distributed=args.distributed, collate_fn=collate_fn,
        pin_memory=args.pin_mem, device=device, use_prefetcher=args.prefetcher)
    sampler_train = use_resumable_sampler(loader_train, args)
    loader_eval = create_loader(
        dataset_eval, input_size=data_config['input_size'], batch_size=args.validation_batch_size or args.batch_size,
        is_training=False, interpolation=data_config['interpolation'], mean=data_config['mean'],
        std=data_config['std'], num_workers=args.workers, distributed=args.distributed,
        crop_pct=data_config['crop_pct'], pin_memory=args.pin_mem, device=device, use_prefetcher=args.prefetcher)

    if mixup_fn is not None or collate_fn is not None:
        train_loss_fn = SoftTargetCrossEntropy()
    elif args.smoothing:
        train_loss_fn = LabelSmoothingCrossEntropy(smoothing=args.smoothing)
    else:
        train_loss_fn = nn.CrossEntropyLoss()
    train_loss_fn, validate_loss_fn = train_loss_fn.to(device), nn.CrossEntropyLoss().to(device)

    updates_per_epoch = len(loader_train) if not args.max_steps_per_epoch else min(
        len(loader_train), args.max_steps_per_epoch)
    lr_scheduler, num_epochs = create_scheduler_v2(
        optimizer, **scheduler_kwargs(args), updates_per_epoch=updates_per_epoch)
    start_epoch, start_step = resume_epoch or 0, 0
    rank_state = None
    if resume:  # a checkpoint of ours: its exact position (timm's recovery files resume at the next epoch)
        start_epoch, start_step = resume['epoch'], min(resume['step'], updates_per_epoch)
        if resume['world_size'] == args.world_size:
            rank_state = resume['ranks'][args.rank]
        elif utils.is_primary(args):
            _logger.warning(f'{args.resume} was written by {resume["world_size"]} processes, this run has '
                            f'{args.world_size}: the random state starts from --seed')
    if lr_scheduler is not None and (start_epoch > 0 or start_step > 0):
        if args.sched_on_updates:
            lr_scheduler.step_update(start_epoch * updates_per_epoch + start_step)
        else:
            lr_scheduler.step(start_epoch)

    saver, output_dir = None, None
    eval_metric = args.eval_metric
    if utils.is_primary(args):
        experiment = args.experiment or '-'.join([time.strftime('%Y%m%d-%H%M%S'), args.model])
        output_dir = utils.get_outdir(args.output, experiment)
        saver = AtomicCheckpointSaver(
            model=model, optimizer=optimizer, args=plain_args(args), model_ema=model_ema, amp_scaler=loss_scaler,
            checkpoint_dir=output_dir, recovery_dir=output_dir, decreasing=eval_metric == 'loss',
            max_history=args.checkpoint_hist)
        if args.resume and os.path.dirname(os.path.abspath(args.resume)) == os.path.abspath(output_dir):
            saver.load_state_dict_from_checkpoint(args.resume)
            if os.path.basename(args.resume).startswith(saver.recovery_prefix):
                saver.curr_recovery_file = args.resume  # removed in turn like the run's own
        with atomic_open(os.path.join(output_dir, 'args.yaml')) as f:
            yaml.safe_dump(plain_args(args), f, default_flow_style=False)
        summary_rows_before(os.path.join(output_dir, 'summary.csv'), start_epoch)
        _logger.info(f'Training {args.model} for {num_epochs} epochs (incl. cooldown) from epoch {start_epoch}'
                     + (f' step {start_step}' if start_step else '') + ', '
                     f'{updates_per_epoch} steps per epoch (of {len(loader_train)} per process, world size '
                     f'{args.world_size}); output in {output_dir}')
        if args.log_wandb:
            import wandb
            wandb.init(project=args.experiment or None, name=args.task_name or None, config=plain_args(args))

    best_metric, best_epoch = None, None
    stop_flag = StopFlag(args.distributed)  # (the stop check of each step; a collective to make)
    for epoch in range(start_epoch, num_epochs):
        step = start_step if epoch == start_epoch else 0
        if sampler_train is not None:
            sampler_train.set_epoch(epoch, start=step * args.batch_size * args.world_size)
        elif hasattr(dataset_train, 'set_epoch'):  # (webdataset shards: their shuffle follows the epoch)
            dataset_train.set_epoch(epoch)
        if lr_scheduler is not None and args.sched_on_updates and step:
            # resumed mid-epoch: record the rate of the epoch's first step, as an unbroken run does
            lr_scheduler.step_update(epoch * updates_per_epoch)
            lrs = [g['lr'] for g in optimizer.param_groups]
            lr_scheduler.step_update(epoch * updates_per_epoch + step)
        else:
            lrs = [g['lr'] for g in optimizer.param_groups]  # the rate this epoch trains at (its first step's)
        train_metrics = train_one_epoch(
            epoch, model, loader_train, optimizer, train_loss_fn, args, device, lr_scheduler, saver,
            amp_autocast, loss_scaler, model_ema, mixup_fn, updates_per_epoch, sampler=sampler_train,
            start_step=step, rank_state=rank_state if epoch == start_epoch else None, argv=argv, stop_flag=stop_flag)
        eval_metrics = evaluate(model, loader_eval, validate_loss_fn, args, device, amp_autocast)
        if model_ema is not None and not args.model_ema_force_cpu:
            eval_metrics = evaluate(model_ema, loader_eval, validate_loss_fn, args, device, amp_autocast,
                                    log_suffix=' (EMA)')
        if lr_scheduler is not None:
            lr_scheduler.step(epoch + 1, eval_metrics[eval_metric])
        if output_dir is not None:
            # summary first: a run killed before the checkpoint below repeats this epoch, and the
            # resume drops this row again (_summary_rows_before); a full disk is one line
            with no_space_as_error(os.path.join(output_dir, 'summary.csv'), what=f'the summary of epoch {epoch}'):
                utils.update_summary(
                    epoch, train_metrics, eval_metrics, filename=os.path.join(output_dir, 'summary.csv'),
                    lr=sum(lrs) / len(lrs), write_header=epoch == 0 or not os.path.exists(
                        os.path.join(output_dir, 'summary.csv')) or os.path.getsize(
                        os.path.join(output_dir, 'summary.csv')) == 0, log_wandb=args.log_wandb)
        state = resume_point(args, epoch + 1, 0)
        if saver is not None:
            saver.resume_state = state
            best_metric, best_epoch = saver.save_checkpoint(epoch, metric=eval_metrics[eval_metric])
        if epoch + 1 < num_epochs and stop_requested(device, args.distributed):  # (a signal during evaluation)
            stop_run(args, output_dir and os.path.join(output_dir, 'last.pth.tar'), epoch, updates_per_epoch - 1,
                     argv)
    if best_metric is not None:
        _logger.info(f'*** Best metric: {best_metric} (epoch {best_epoch})')
    if args.distributed:
        torch.distributed.destroy_process_group()
    return best_metric


if __name__ == '__main__':
    run_cli(main, USER_ERRORS + (NonFiniteLossError, Preempted))

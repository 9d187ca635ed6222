#!/usr/bin/env python3
"""Average the weights of the best N checkpoints of a train.py run (timm's avg_checkpoints.py).

    .venv/bin/python tools/avg_checkpoints.py --input output/train/digits -n 3 --output averaged.pth
    .venv/bin/python tools/avg_checkpoints.py --input output/train/digits --use-ema --output averaged.safetensors
    .venv/bin/python tools/avg_checkpoints.py --input output/train/digits --no-sort -n 2 --output last2.pth

Checkpoints are the files in --input matching --filter (default `checkpoint-*.pth.tar`: the
`--checkpoint-hist` files train.py keeps). They are ranked by the metric stored in each one
('metric': eval top-1 by default, higher first; lowest first for a run with --eval-metric loss)
and the best N are averaged; files without a metric are skipped. --no-sort takes the N newest by
epoch instead. Files of the same epoch (model_best.pth.tar / last.pth.tar are copies of a
checkpoint-<epoch> file) count once.

Floating-point tensors are averaged in float64 and stored in their own dtype; other tensors must
be equal in every file. The weights are each file's `state_dict` (--use-ema: `state_dict_ema`,
an error where a file has none), read with torch.load(weights_only=True). The output (a state
dict: .pth, or .safetensors by its extension) is written complete or not at all, and its SHA-256
is printed.
"""
import argparse
import fnmatch
import hashlib
import io
import os
import sys

import torch

from engine.cli import ArgumentParser, UsageError, check_numbers, run_cli
from engine.files import atomic_open
from models.checkpoint import CheckpointError, checkpoint_state_dict, read_checkpoint


def build_parser():
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--input', required=True, metavar='DIR', help='train.py output folder of the run')
    p.add_argument('--filter', default='checkpoint-*.pth.tar', metavar='WILDCARD',
                   help='file name pattern in --input (default: checkpoint-*.pth.tar)')
    p.add_argument('--output', default='./averaged.pth', metavar='FILE',
                   help='output file: .pth (torch.save) or .safetensors (default: ./averaged.pth)')
    ema = p.add_mutually_exclusive_group()
    ema.add_argument('--use-ema', action='store_true', help="average the EMA weights ('state_dict_ema')")
    ema.add_argument('--no-use-ema', action='store_true', help="average the model weights ('state_dict'; the default)")
    p.add_argument('--no-sort', action='store_true', help='take the N newest checkpoints instead of the N best')
    p.add_argument('-n', type=int, default=10, metavar='N', help='number of checkpoints to average (default 10)')
    p.add_argument('--force', action='store_true', help='overwrite an existing --output')
    return p


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def serialize(state_dict, path: str) -> bytes:
    """The bytes of `state_dict` as a .safetensors (by extension) or torch.save file."""
    if path.endswith('.safetensors'):
        from safetensors.torch import save
        return save({k: v.contiguous() for k, v in state_dict.items()}, metadata={'format': 'pt'})
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    return buffer.getvalue()


def write_bytes(data: bytes, path: str):
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with atomic_open(path, 'wb') as f:
        f.write(data)


def _run_info(checkpoint, path):
    """(epoch, metric, lower_is_better) of a train.py checkpoint's content."""
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f'{path}: not a train.py checkpoint (holds a {type(checkpoint).__name__})')
    metric = checkpoint.get('metric')
    if isinstance(metric, torch.Tensor) and metric.numel() == 1:
        metric = metric.item()
    if not isinstance(metric, (int, float)):
        metric = None
    saved = checkpoint.get('args') if isinstance(checkpoint.get('args'), dict) else {}
    epoch = checkpoint.get('epoch')
    return (epoch if isinstance(epoch, int) else None), metric, saved.get('eval_metric') == 'loss'


def select_checkpoints(folder: str, pattern: str, n: int, sort: bool, log=print):
    """The files to average, best (or newest) first: [(path, epoch, metric)]."""
    if not os.path.isdir(folder):
        raise UsageError(f'--input {folder}: no such folder; pass the output folder of a train.py run')
    files = sorted(os.path.join(folder, f) for f in os.listdir(folder)
                   if fnmatch.fnmatch(f, pattern) and os.path.isfile(os.path.join(folder, f)))
    if not files:
        raise UsageError(f'--input {folder} holds no files matching --filter {pattern!r}')
    infos, lower_better = [], set()
    for path in files:
        epoch, metric, lower = _run_info(read_checkpoint(path), path)
        infos.append((path, epoch, metric))
        lower_better.add(lower)
    by_epoch = {}
    for path, epoch, metric in infos:  # one file per epoch, preferring checkpoint-<epoch> names
        key = epoch if epoch is not None else path
        if key in by_epoch:
            kept = by_epoch[key]
            if os.path.basename(path).startswith('checkpoint-') and not os.path.basename(kept[0]).startswith(
                    'checkpoint-'):
                kept, path = (path, epoch, metric), kept[0]
            log(f'=> {os.path.basename(path)} holds epoch {epoch} as {os.path.basename(kept[0])} does: counted once')
            by_epoch[key] = kept
        else:
            by_epoch[key] = (path, epoch, metric)
    infos = list(by_epoch.values())
    if sort:
        without = [os.path.basename(p) for p, _, m in infos if m is None]
        if without:
            log(f'=> skipped (no metric stored): {", ".join(without)}')
        infos = [i for i in infos if i[2] is not None]
        if not infos:
            raise UsageError(f'no file matching {pattern!r} in {folder} stores a metric: pass --no-sort to '
                             'average the newest checkpoints')
        lower = lower_better == {True}
        infos.sort(key=lambda i: (i[2] if lower else -i[2], -(i[1] or 0)))
    else:
        infos.sort(key=lambda i: (-(i[1] if i[1] is not None else -1), -os.path.getmtime(i[0])))
    return infos[:n]


def average_state_dicts(state_dicts, names):
    """Mean of floating-point tensors (float64 sum, then the tensor's own dtype); other tensors
    must be equal in every state dict. Keys and shapes must match."""
    first, first_name = state_dicts[0], names[0]
    for sd, name in zip(state_dicts[1:], names[1:]):
        if set(sd) != set(first):
            only = sorted(set(sd) ^ set(first))
            raise CheckpointError(f'{name} and {first_name} hold different tensors ({", ".join(only[:3])}'
                                  f'{", ..." if len(only) > 3 else ""}): average checkpoints of one model')
        for k, v in sd.items():
            if v.shape != first[k].shape or v.dtype != first[k].dtype:
                raise CheckpointError(f'{name}: {k} is {v.dtype} {tuple(v.shape)}, in {first_name} '
                                      f'{first[k].dtype} {tuple(first[k].shape)}: average checkpoints of one model')
    out = {}
    for k, v in first.items():
        if v.is_floating_point() or v.is_complex():
            acc = torch.zeros_like(v, dtype=torch.complex128 if v.is_complex() else torch.float64)
            for sd in state_dicts:
                acc += sd[k].to(acc.dtype)
            acc /= len(state_dicts)
            if not v.is_complex():
                info = torch.finfo(v.dtype)
                acc = acc.clamp(info.min, info.max)
            out[k] = acc.to(v.dtype)
        else:
            for sd, name in zip(state_dicts[1:], names[1:]):
                if not torch.equal(sd[k], v):
                    raise CheckpointError(f'{name}: {k} ({v.dtype}) differs from {first_name}; only '
                                          'floating-point tensors can be averaged')
            out[k] = v.clone()
    return out


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    check_numbers(parser, args)
    if os.path.isdir(args.output):
        parser.error(f'--output {args.output} is a folder: pass a file name (e.g. averaged.pth)')
    if os.path.exists(args.output) and not args.force:
        parser.error(f'--output {args.output} already exists: pass another file name, or --force to replace it')

    selected = select_checkpoints(args.input, args.filter, args.n, sort=not args.no_sort)
    print('Selected checkpoints:' + (' (best first)' if not args.no_sort else ' (newest first)'))
    for path, epoch, metric in selected:
        print(f'  {os.path.basename(path)}  epoch {epoch}' + (f'  metric {metric}' if metric is not None else ''))
    names = [p for p, _, _ in selected]
    state_dicts = [checkpoint_state_dict(read_checkpoint(p), p, use_ema=args.use_ema) for p in names]
    averaged = average_state_dicts(state_dicts, names)

    data = serialize(averaged, args.output)
    write_bytes(data, args.output)
    digest = sha256_bytes(data)
    print(f"=> Saved the average of {len(names)} {'EMA ' if args.use_ema else ''}state_dicts to {args.output}, "
          f'SHA256: {digest}')
    sys.stdout.flush()
    return args.output, digest


if __name__ == '__main__':
    run_cli(main)

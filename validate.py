#!/usr/bin/env python3
"""Evaluate checkpoints (the authors' released .pth files or our .pth.tar training checkpoints).

    .venv/bin/python validate.py /path/to/imagenet --model dfformer_s18 --checkpoint dfformer_s18.pth
    .venv/bin/python validate.py --dataset digits --model dfformer_s18 --img-size 32 \
        --checkpoint output/train/digits/model_best.pth.tar --results-file r.json
    ./distributed_validate.sh 8 /path/to/imagenet --model dfformer_s18 --pretrained

--checkpoint may be a folder: every *.pth / *.pth.tar / *.safetensors in it is evaluated.
"""
import argparse
import csv
import glob
import json
import logging
import os

import torch
import torch.nn as nn
from timm import utils
from timm.data import create_loader, resolve_data_config

from engine.cli import (
    ArgumentParser,
    add_data_args,
    add_model_args,
    add_runtime_args,
    check_data_args,
    check_device,
    check_model_args,
    check_results_file,
    resolve_num_classes,
    run_cli,
)
from engine.data import build_dataset, dataset_num_classes
from engine.evaluate import evaluate
from engine.files import atomic_open
from engine.runtime import amp_autocast_for, model_img_size, setup_device
from engine.weights import add_weights_args, check_checkpoint_file, check_weights_args, create_model
from models import CheckpointError, load_checkpoint

_logger = logging.getLogger('validate')


def build_parser():
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_args(p, splits=[('--split', 'validation')])
    add_model_args(p)
    add_runtime_args(p, batch_size=256)
    add_weights_args(p, checkpoint_help='a checkpoint file or a folder of them')
    g = p.add_argument_group('evaluation')
    g.add_argument('--results-file', default='')
    g.add_argument('--results-format', default='json', choices=['json', 'csv'])
    return p


def checkpoint_files(path: str):
    if os.path.isdir(path):
        files = sorted(f for ext in ('*.pth', '*.pth.tar', '*.safetensors') for f in glob.glob(os.path.join(path, ext)))
        if not files:
            raise CheckpointError(f'{path}: folder holds no .pth, .pth.tar or .safetensors checkpoints')
        return files
    return [path]


def main(argv=None):
    if not logging.getLogger().handlers:  # (main() may run more than once in a process)
        utils.setup_default_logging()
    parser = build_parser()
    args = parser.parse_args(argv)
    check_data_args(parser, args)
    check_model_args(parser, args)
    check_device(parser, args)
    check_weights_args(parser, args, folder_ok=True)
    if args.results_file:
        check_results_file(parser, args.results_file)
    checkpoints = checkpoint_files(args.checkpoint) if args.checkpoint else [None]
    for ckpt in checkpoints:  # an unreadable file stops here, before any work
        if ckpt:
            check_checkpoint_file('--checkpoint', ckpt, args.model, use_ema=args.use_ema)
    device = setup_device(args)

    dataset = build_dataset(args.dataset, args.data_dir, args.split, is_training=False, class_map=args.class_map,
                            processes=args.world_size, workers=args.workers)
    num_classes = resolve_num_classes(args.num_classes, dataset_num_classes(dataset))
    model = create_model(args, num_classes=num_classes, img_size=model_img_size(args))
    model.to(device).eval()
    if args.channels_last:
        model.to(memory_format=torch.channels_last)
    param_count = sum(p.numel() for p in model.parameters())
    data_config = resolve_data_config(vars(args), model=model, verbose=utils.is_primary(args))
    loader = create_loader(
        dataset, input_size=data_config['input_size'], batch_size=args.batch_size, is_training=False,
        interpolation=data_config['interpolation'], mean=data_config['mean'], std=data_config['std'],
        num_workers=args.workers, crop_pct=data_config['crop_pct'], pin_memory=args.pin_mem, device=device,
        use_prefetcher=args.prefetcher, distributed=args.distributed)
    amp_autocast, _ = amp_autocast_for(args, device)

    results = []
    for ckpt in checkpoints:
        if ckpt:
            load_checkpoint(model, ckpt, use_ema=args.use_ema)
        metrics = evaluate(model, loader, nn.CrossEntropyLoss().to(device), args, device, amp_autocast)
        results.append(dict(
            model=args.model, checkpoint=ckpt or ('pretrained' if args.pretrained else 'random'),
            top1=round(metrics['top1'], 4), top1_err=round(100 - metrics['top1'], 4),
            top5=round(metrics['top5'], 4), top5_err=round(100 - metrics['top5'], 4),
            loss=round(metrics['loss'], 6), param_count=round(param_count / 1e6, 3),
            img_size=data_config['input_size'][-1], crop_pct=data_config['crop_pct'],
            interpolation=data_config['interpolation']))
    if utils.is_primary(args):
        for r in results:
            _logger.info(f"{r['checkpoint']}: top1 {r['top1']:.3f}  top5 {r['top5']:.3f}")
        if args.results_file:
            write_results(results, args.results_file, args.results_format)
        print(f'--result\n{json.dumps(results[0] if len(results) == 1 else results, indent=4)}')
    if args.distributed:
        torch.distributed.destroy_process_group()
    return results


def write_results(results, path, fmt):
    """Written atomically (a complete file or the old one), its folder made if need be."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_open(path, newline='') as f:
        if fmt == 'json':
            json.dump(results[0] if len(results) == 1 else results, f, indent=4)
        else:
            writer = csv.DictWriter(f, fieldnames=list(results[0].keys()))
            writer.writeheader()
            writer.writerows(results)


if __name__ == '__main__':
    run_cli(main)

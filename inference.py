#!/usr/bin/env python3
"""Top-k class predictions for a folder of images or a list of image files (timm's inference.py
for this zoo).

    .venv/bin/python inference.py photos/ --model dfformer_s18 --pretrained --topk 5
    .venv/bin/python inference.py images.txt --model cdfformer_s18 --checkpoint cdfformer_s18.pth --results-format json
    .venv/bin/python inference.py digits/ --model dfformer_s18 --checkpoint output/train/digits/model_best.pth.tar \\
        --class-map digit_names.txt --results-dir results

DATA is a folder (every image under it, sorted by path) or a text file with one image path per line
(relative paths are relative to that file's folder; blank lines and lines starting with # are
skipped). The weights come from --checkpoint (the authors' .pth, a train.py checkpoint, .safetensors)
or --pretrained. Class count and input size default to those of the checkpoint (its classifier
rows; a train.py checkpoint's --img-size).

Labels: the names of --class-map (one per line, in class order), else ImageNet-1k's names and
descriptions for a 1000-class model (--label-type name|description|detailed), else the class index.
Results: <results-dir>/<results-file>.csv or .json (default ./<model>-<img size>.csv), written
complete or not at all, and printed after a `--result` line unless --no-console-results:
    csv:  filename,label,prob                    (lists as JSON when --topk > 1;
                                                  --results-separate-col: label_0,...,prob_0,...)
    json: {"<filename>": {"label": ..., "prob": ...}, ...}
Filenames are paths relative to the DATA folder, or as listed in the DATA file (--fullname:
absolute paths).

An image that cannot be read does not stop the run: the others are predicted and their results
written as above, each unreadable file is named on one line of stderr
('inference.py: error: <path>: unreadable image (...)'), and the exit code is then 2.
"""
import argparse
import csv
import json
import logging
import os
import time

import torch
from PIL import Image
from timm import utils
from timm.data import ImageNetInfo, create_transform, resolve_data_config

from engine.cli import (
    ArgumentParser,
    UsageError,
    add_model_args,
    add_runtime_args,
    check_data_args,
    check_device,
    check_model_args,
    check_results_file,
    run_cli,
)
from engine.data import IMG_EXTENSIONS, DataError
from engine.files import atomic_open
from engine.runtime import amp_autocast_for, default_img_size, model_img_size
from engine.weights import add_weights_args, check_weights_args, create_model, use_checkpoint_defaults
from models import load_checkpoint

_logger = logging.getLogger('inference')

RESULTS_EXT = {'csv': '.csv', 'json': '.json'}
LABEL_TYPES = ('none', 'index', 'name', 'description', 'detailed')


def build_parser():
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group('data')
    g.add_argument('data', nargs='?', default=None, help='a folder of images or a text file of image paths')
    g.add_argument('--data-dir', default=None, help='same as the positional DATA')
    g.add_argument('--class-map', default='', help='file of class names, one per line, in class order')
    add_model_args(p)
    add_runtime_args(p, batch_size=32)
    for action in p._actions:  # (the shared help speaks of a training data set)
        if action.dest == 'num_classes':
            action.help = "default: the checkpoint's classifier rows (1000 with --pretrained)"
    add_weights_args(p, checkpoint_help='checkpoint file (.pth, .pth.tar, .safetensors)')
    g = p.add_argument_group('results')
    g.add_argument('--topk', type=int, default=1, help='predictions per image (default 1)')
    g.add_argument('--output-type', default='prob', choices=['prob', 'logit'],
                   help='softmax probabilities (default) or raw logits')
    g.add_argument('--label-type', default=None, choices=LABEL_TYPES,
                   help='default: description when class names are known, else index')
    g.add_argument('--include-index', action='store_true', help='add the class indices')
    g.add_argument('--exclude-output', action='store_true', help='leave out the probabilities / logits')
    g.add_argument('--fullname', action='store_true', help='absolute image paths as filenames')
    g.add_argument('--results-dir', default='', help='folder for the results file (default: the current one)')
    g.add_argument('--results-file', default='', help='file name (default: <model>-<img size>)')
    g.add_argument('--results-format', default='csv', choices=sorted(RESULTS_EXT))
    g.add_argument('--results-separate-col', action='store_true', help='one CSV column per top-k rank')
    g.add_argument('--filename-col', default='filename')
    g.add_argument('--index-col', default='index')
    g.add_argument('--label-col', default='label')
    g.add_argument('--output-col', default=None, help='default: prob or logit')
    g.add_argument('--no-console-results', action='store_true', help='do not print the results')
    g.add_argument('--log-freq', type=int, default=10, help='log progress every N batches')
    return p


# ----------------------------------------------------------------------------------------------
# Images

def _is_image(name: str) -> bool:
    return name.lower().endswith(IMG_EXTENSIONS)


def list_images(data: str, fullname: bool = False):
    """[(path, name in the results)] of a folder (recursive, sorted) or a text file of paths."""
    if not data:
        raise DataError('no images given: pass a folder of images or a text file listing image paths')
    if os.path.isdir(data):
        paths = sorted(os.path.join(root, f) for root, _, files in os.walk(data, followlinks=True)
                       for f in files if _is_image(f))
        if not paths:
            raise DataError(f'{data} holds no images ({", ".join(IMG_EXTENSIONS)}): pass a folder of images')
        names = [os.path.relpath(p, data) for p in paths]
    elif os.path.isfile(data):
        if _is_image(data):
            raise DataError(f'{data} is an image: pass the folder it is in, or a text file listing image paths')
        base = os.path.dirname(os.path.abspath(data))
        try:
            with open(data, encoding='utf-8') as f:
                lines = [(n, line.strip()) for n, line in enumerate(f, 1)]
        except (OSError, UnicodeDecodeError) as e:
            raise DataError(f'{data}: cannot read the list of images ({e}); '
                            'pass a text file, one path per line') from None
        names = [line for _, line in lines if line and not line.startswith('#')]
        paths = []
        for n, name in lines:
            if not name or name.startswith('#'):
                continue
            path = name if os.path.isabs(name) else os.path.join(base, name)
            if not os.path.isfile(path):
                raise DataError(f'{data}, line {n}: {name}: no such image file')
            paths.append(path)
        if not paths:
            raise DataError(f'{data} lists no images: write one image path per line')
        seen = set()
        for name in names:
            if name in seen:
                raise DataError(f'{data} lists {name} twice: list every image once')
            seen.add(name)
    else:
        raise DataError(f'{data}: no such folder or file: pass a folder of images or a text file of image paths')
    if fullname:
        names = [os.path.abspath(p) for p in paths]
    return list(zip(paths, names))


class UnreadableImages(DataError):
    """Images that could not be read, one line each (engine.cli.errors_as_one_line prints every
    line of `lines`); the others were predicted and their results written."""

    def __init__(self, lines):
        self.lines = lines
        super().__init__('; '.join(lines))


class ImageList(torch.utils.data.Dataset):
    """Images by path: (index, RGB tensor, '') or, for an unreadable file, (index, None, why), so
    that one bad file does not stop the others (see collate_readable)."""

    def __init__(self, paths, transform):
        self.paths = paths
        self.transform = transform

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        path = self.paths[index]
        try:
            with Image.open(path) as img:
                img = img.convert('RGB')
        except (OSError, ValueError) as e:
            reason = str(e).split(' <')[0]  # PIL appends the file object's repr
            return index, None, f'{path}: unreadable image ({reason}); remove or replace the file'
        return index, self.transform(img), ''


def collate_readable(items):
    """A batch of ImageList items: (images (N, C, H, W) or None, their indices, problems of the
    unreadable ones)."""
    good = [(i, x) for i, x, _ in items if x is not None]
    images = torch.stack([x for _, x in good]) if good else None
    return images, [i for i, _ in good], [why for _, x, why in items if x is None]


# ----------------------------------------------------------------------------------------------
# Classes and labels

def read_class_map(path: str):
    with open(path, encoding='utf-8') as f:
        names = [line.strip() for line in f if line.strip()]
    if not names:
        raise UsageError(f'--class-map {path} holds no class names: write one name per line, in class order')
    return names


def label_mapper(label_type, num_classes, class_names):
    """index -> label for `label_type`, or None for no labels."""
    if label_type == 'none':
        return None
    if label_type == 'index':
        return int
    if class_names is not None:
        return lambda i: class_names[i]
    if num_classes != 1000:
        raise UsageError(f'--label-type {label_type}: class names are known only for 1000-class (ImageNet-1k) '
                         f'models, this one has {num_classes} classes; pass --class-map (names, one per line) '
                         'or --label-type index')
    info = ImageNetInfo()
    if label_type == 'name':
        return info.index_to_label_name
    return lambda i: info.index_to_description(i, detailed=label_type == 'detailed')


# ----------------------------------------------------------------------------------------------
# Results

def results_path(args, img_size) -> str:
    name = args.results_file or f'{args.model}-{img_size}'
    stem, ext = os.path.splitext(name)
    if ext in RESULTS_EXT.values():
        name = stem
    return os.path.join(args.results_dir, name + RESULTS_EXT[args.results_format])


def _cell(value):
    return json.dumps(value) if isinstance(value, list) else value


def write_results(rows, path, fmt, filename_col, separate_col=False):
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    with atomic_open(path, newline='', encoding='utf-8') as f:
        if fmt == 'json':
            json.dump({r[filename_col]: {k: v for k, v in r.items() if k != filename_col} for r in rows}, f, indent=4)
            f.write('\n')
            return
        if separate_col:
            rows = [{k2: v2 for k, v in r.items() for k2, v2 in (
                [(f'{k}_{i}', vi) for i, vi in enumerate(v)] if isinstance(v, list) else [(k, v)])} for r in rows]
        writer = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        writer.writeheader()
        writer.writerows({k: _cell(v) for k, v in r.items()} for r in rows)


# ----------------------------------------------------------------------------------------------

def main(argv=None):
    if not logging.getLogger().handlers:  # (main() may run more than once in a process)
        utils.setup_default_logging()
    parser = build_parser()
    args = parser.parse_args(argv)
    check_weights_args(parser, args, required=True)
    if args.exclude_output and args.label_type == 'none' and not args.include_index:
        parser.error('--exclude-output with --label-type none and no --include-index leaves nothing to write')
    check_model_args(parser, args)  # model name, sizes and every number option
    check_data_args(parser, args)
    # (the default name gets the input size once the model is built)
    check_results_file(parser, results_path(args, default_img_size(args.model)))
    check_device(parser, args)
    device = torch.device(args.device)

    images = list_images(args.data_dir, fullname=args.fullname)
    class_names = read_class_map(args.class_map) if args.class_map else None
    use_checkpoint_defaults(args)
    num_classes = args.num_classes or (len(class_names) if class_names else 1000)
    if class_names is not None and len(class_names) != num_classes:
        raise UsageError(f'--class-map {args.class_map} names {len(class_names)} classes, the model has '
                         f'{num_classes}: give one name per class, in class order')
    label_type = args.label_type or ('description' if class_names or num_classes == 1000 else 'index')
    to_label = label_mapper(label_type, num_classes, class_names)

    model = create_model(args, num_classes=num_classes, img_size=model_img_size(args))
    if args.checkpoint:
        load_checkpoint(model, args.checkpoint, use_ema=args.use_ema)
    model.to(device).eval()
    if args.channels_last:
        model.to(memory_format=torch.channels_last)
    data_config = resolve_data_config(vars(args), model=model, verbose=True)
    args.results_file = results_path(args, data_config['input_size'][-1])
    dataset = ImageList([p for p, _ in images], create_transform(**data_config, is_training=False))
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=args.batch_size, shuffle=False, num_workers=args.workers,
        pin_memory=args.pin_mem and device.type == 'cuda', collate_fn=collate_readable)
    amp_autocast, _ = amp_autocast_for(args, device)
    _logger.info(f'{args.model}: {len(images)} images, {num_classes} classes, top-{min(args.topk, num_classes)}')

    top_k = min(args.topk, num_classes)
    all_values, all_indices, readable, unreadable = [], [], [], []
    batch_time, end = utils.AverageMeter(), time.time()
    with torch.inference_mode():
        for batch_idx, (input, indices, problems) in enumerate(loader):
            unreadable += problems
            if input is None:
                continue
            readable += indices
            input = input.to(device)
            if args.channels_last:
                input = input.contiguous(memory_format=torch.channels_last)
            with amp_autocast():
                output = model(input)
            output = output.float()
            if args.output_type == 'prob':
                output = output.softmax(-1)
            values, indices = output.topk(top_k, dim=-1)  # sorted, largest first
            all_values.append(values.cpu())
            all_indices.append(indices.cpu())
            batch_time.update(time.time() - end)
            end = time.time()
            if batch_idx % args.log_freq == 0:
                _logger.info(f'Predict: [{batch_idx}/{len(loader)}] Time {batch_time.val:.3f} ({batch_time.avg:.3f})')
    if not readable:
        raise UnreadableImages(unreadable)
    values, indices = torch.cat(all_values).tolist(), torch.cat(all_indices).tolist()

    output_col = args.output_col or args.output_type
    squeeze = (lambda v: v[0]) if top_k == 1 else (lambda v: v)
    rows = []
    for (_, name), vals, idxs in zip([images[i] for i in readable], values, indices):
        row = {args.filename_col: name}
        if args.include_index:
            row[args.index_col] = squeeze(idxs)
        if to_label is not None:
            row[args.label_col] = squeeze([to_label(i) for i in idxs])
        if not args.exclude_output:
            row[output_col] = squeeze(vals)
        rows.append(row)
    write_results(rows, args.results_file, args.results_format, args.filename_col, args.results_separate_col)
    _logger.info(f'Results of {len(rows)} images written to {args.results_file}'
                 + (f' ({len(unreadable)} unreadable, named below)' if unreadable else ''))
    if not args.no_console_results:
        print('--result')
        print(json.dumps({r[args.filename_col]: {k: v for k, v in r.items() if k != args.filename_col}
                          for r in rows}, indent=4))
    if unreadable:
        raise UnreadableImages(unreadable)
    return rows


if __name__ == '__main__':
    run_cli(main)

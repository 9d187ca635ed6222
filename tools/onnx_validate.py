#!/usr/bin/env python3
"""Check an exported .onnx file against the PyTorch model, in ONNX Runtime (CPU provider).

    .venv/bin/python tools/onnx_validate.py dfformer_s18.onnx --model dfformer_s18 --checkpoint dfformer_s18.pth
    .venv/bin/python tools/onnx_validate.py dfformer_s18-dyn.onnx --model dfformer_s18 --pretrained \\
        --input-size 3 256 192
    .venv/bin/python tools/onnx_validate.py dfformer_s18.onnx --model dfformer_s18 --pretrained --data photos/

Inputs: --batch-size random images (seeded, standard normal) of --img-size / --input-size
(default: a train.py --checkpoint's --img-size / --input-size, as onnx_export.py exports it, else
the size the model is built for, 224), or with --data the images of a folder
(recursive) through timm's eval transform of the model's pretrained config at that size. The
PyTorch model is built like onnx_export.py builds it (--model, --checkpoint or --pretrained,
--img-size / --input-size for the filters' size unless --model-img-size says otherwise).

Prints the max abs error, the max abs error / max |PyTorch output| (relative error) and the
share of images whose top-1 class agrees; exits 1 when the relative error exceeds --tol.
"""
import argparse
import logging
import os
import sys

import numpy as np
import timm
import torch
from timm.data import ImageDataset, create_transform, resolve_data_config

from engine.cli import ArgumentParser, UsageError, check_model_args, run_cli
from engine.data import DataError
from engine.export import add_export_model_args, build_model, input_size_of
from engine.weights import check_weights_args, use_checkpoint_defaults

_logger = logging.getLogger('onnx_validate')


def build_parser():
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('onnx', metavar='ONNX_FILE', help='the exported .onnx file')
    add_export_model_args(p, 'extra model arguments, as given to onnx_export.py')
    p.add_argument('--model-img-size', type=int, nargs=2, default=None, metavar=('H', 'W'),
                   help='the size the model was exported for (its filters), if not the checked input size')
    p.add_argument('--data', default='', help='folder of images (default: random input)')
    p.add_argument('-b', '--batch-size', type=int, default=2, help='images per run (default 2)')
    p.add_argument('--max-images', type=int, default=None, help='with --data: stop after this many images')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--tol', type=float, default=1e-4, help='largest relative error accepted (default 1e-4)')
    return p


def main(argv=None):
    if not logging.getLogger().handlers:
        timm.utils.setup_default_logging()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not os.path.isfile(args.onnx):
        parser.error(f'{args.onnx}: no such file' + (' (a folder: pass the .onnx file)' if os.path.isdir(args.onnx)
                                                    else ''))
    check_weights_args(parser, args)
    if args.data and not os.path.isdir(args.data):
        parser.error(f'--data {args.data}: no such folder; pass a folder of images')
    check_model_args(parser, args)  # model name, sizes and every number option
    use_checkpoint_defaults(args)  # (class count and size of the checkpoint, as onnx_export.py takes them)

    import onnxruntime
    try:
        session = onnxruntime.InferenceSession(args.onnx, providers=['CPUExecutionProvider'])
    except Exception as e:  # (onnxruntime's own exception types are not exported)
        raise UsageError(f'{args.onnx}: not an ONNX model ONNX Runtime can load ({str(e).splitlines()[0]})') from None

    input_size = input_size_of(args)
    img_size = tuple(args.model_img_size) if args.model_img_size else input_size[1:]
    model = build_model(args, input_size, img_size)

    if args.data:
        config = resolve_data_config(model=model)
        config['input_size'] = input_size
        dataset = ImageDataset(args.data, transform=create_transform(**config))
        if len(dataset) == 0:
            raise DataError(f'--data {args.data} holds no images')
        count = min(len(dataset), args.max_images or len(dataset))
        batches = (torch.stack([dataset[i][0] for i in range(s, min(s + args.batch_size, count))])
                   for s in range(0, count, args.batch_size))
    else:
        generator = torch.Generator().manual_seed(args.seed)
        batches = [torch.randn((args.batch_size,) + input_size, generator=generator)]

    input_name = session.get_inputs()[0].name
    abs_error = scale = 0.
    agree = total = 0
    for x in batches:
        with torch.no_grad():
            reference = model(x).numpy()
        try:
            output = session.run(None, {input_name: x.numpy()})[0]
        except Exception as e:
            raise UsageError(f'{args.onnx}: ONNX Runtime cannot run input {tuple(x.shape)} '
                             f'({str(e).splitlines()[0]}); was it exported for this size (--dynamic-size)?') from None
        if output.shape != reference.shape:
            raise UsageError(f'{args.onnx} gives outputs {output.shape}, {args.model} {reference.shape}: '
                             'pass the --model / --num-classes it was exported with')
        abs_error = max(abs_error, float(np.abs(output.astype(np.float64) - reference).max()))
        scale = max(scale, float(np.abs(reference).max()))
        agree += int((output.argmax(1) == reference.argmax(1)).sum())
        total += len(x)
    rel_error = abs_error / max(scale, 1e-30)
    print(f'{args.model} {args.onnx} input {input_size} ({total} images): max abs error {abs_error:.3g}, '
          f'max abs error / max |output| {rel_error:.3g}, top-1 agreement {agree}/{total} '
          f'({100. * agree / total:.1f}%)')
    if rel_error > args.tol:
        print(f'{os.path.basename(sys.argv[0])}: relative error {rel_error:.3g} exceeds --tol {args.tol:g}',
              file=sys.stderr)
        sys.exit(1)


if __name__ == '__main__':
    run_cli(main)

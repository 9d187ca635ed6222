#!/usr/bin/env python3
"""Export a DFFormer zoo model to ONNX (timm's onnx_export.py for this zoo).

    .venv/bin/python onnx_export.py dfformer_s18.onnx --model dfformer_s18 --checkpoint dfformer_s18.pth
    .venv/bin/python onnx_export.py dfformer_s18-dyn.onnx --model dfformer_s18 --pretrained --dynamic-size \\
        --check-forward

The graph takes `input0` (N, C, H, W) float32 and gives `output0` (N, classes); the batch size
is always dynamic, height and width with --dynamic-size (any size of at least 32 px, odd or
even, square or not). Class count and input size default to those of --checkpoint, as in
inference.py (its classifier rows; a train.py checkpoint's --img-size / --input-size), else the
model's (224). The spectral mixers are exported with real DFT matrices
(`spectral_transform('matmul')`): MatMul nodes, no FFT / complex ops, which ONNX Runtime's CPU
and CUDA providers run. With --dynamic-size the matrices are built in the graph from the
feature-map sizes (Range, Mod, Cos, Sin) and the learned filters are resized in the graph
(bicubic Resize, an identity at the size they were built for, --img-size / --input-size).

Exporter: torch.onnx.export(dynamo=True) (torch.export + onnxscript). The TorchScript exporter
(dynamo=False) gives wrong outputs for this model (4e-2 relative error on a tiny dfformer_s18,
already at the traced size).
The file is written whole or not at all (OUTPUT.tmp, then renamed).
"""
import argparse
import logging
import os
import time

import timm
import torch

from engine.cli import ArgumentParser, check_model_args, run_cli
from engine.export import add_export_model_args, build_model, input_size_of, relative_error
from engine.files import atomic_path, write_problem
from engine.runtime import model_img_size
from engine.weights import check_weights_args, use_checkpoint_defaults
from models.layers import spectral_transform

_logger = logging.getLogger('onnx_export')

# The dynamo exporter's lowest opset (onnxscript's torch_lib); its default is used without --opset.
MIN_OPSET = 18
# Traced this much larger than the filters' size with --dynamic-size, so the filter resize (skipped
# at equal sizes) is in the graph.
_DYNAMIC_TRACE_PAD = 32


def build_parser():
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('output', metavar='ONNX_FILE', help='the .onnx file to write')
    add_export_model_args(p, 'extra model arguments, e.g. depths="(1,1,1,1)" dims="(8,16,24,32)"')
    p.add_argument('-b', '--batch-size', type=int, default=1, help='batch of the example input (default 1)')
    p.add_argument('--dynamic-size', action='store_true', help='dynamic height and width')
    p.add_argument('--opset', type=int, default=None,
                   help=f'ONNX opset (at least {MIN_OPSET}; default: the exporter\'s, 20 with torch 2.14)')
    p.add_argument('--check-forward', action='store_true',
                   help='run the file in ONNX Runtime on the example input and compare with PyTorch')
    p.add_argument('--verbose', action='store_true')
    return p


def _remainder_scalar(self, other):
    """aten.remainder.Scalar whose divisor may be a symbolic size (onnxscript's needs a constant):
    `arange(H) * k % H` of the DFT matrices. ONNX Mod with fmod=0 has Python's sign rule."""
    from onnxscript import opset18 as op
    return op.Mod(self, op.CastLike(other, self))


def export_onnx(model: torch.nn.Module, output: str, input_size, batch_size: int = 1,
                dynamic_size: bool = False, opset=None, verbose: bool = False) -> torch.Tensor:
    """Export `model` (eval mode) to `output`, atomically; returns the example input (batch_size,
    *input_size) it was checked with. See the module docstring for the graph's shapes."""
    import onnx

    model.eval()
    c, h, w = input_size
    example = torch.randn(batch_size, c, h, w)
    # torch.export takes a size-1 dimension for a constant: trace with 2 or more images.
    trace_h, trace_w = (h + _DYNAMIC_TRACE_PAD, w + _DYNAMIC_TRACE_PAD) if dynamic_size else (h, w)
    trace_input = torch.randn(max(2, batch_size), c, trace_h, trace_w)
    axes = {0: 'batch', 2: 'height', 3: 'width'} if dynamic_size else {0: 'batch'}
    with atomic_path(output) as tmp, torch.no_grad(), spectral_transform('matmul'):
        torch.onnx.export(
            model, (trace_input,), tmp, dynamo=True, input_names=['input0'], output_names=['output0'],
            dynamic_shapes=(axes,), opset_version=opset, external_data=False, optimize=True,
            custom_translation_table={torch.ops.aten.remainder.Scalar: _remainder_scalar},
            verbose=verbose,
        )
        onnx.checker.check_model(tmp, full_check=True)
    return example


def onnx_forward(path: str, x: torch.Tensor):
    """Output of the .onnx file for `x` in ONNX Runtime (CPU)."""
    import onnxruntime
    session = onnxruntime.InferenceSession(path, providers=['CPUExecutionProvider'])
    return session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]


def main(argv=None):
    if not logging.getLogger().handlers:
        timm.utils.setup_default_logging()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.verbose:  # (the exporter's graph passes log every node they touch)
        for name in ('onnxscript', 'onnx_ir', 'torch.onnx', 'torch.export', 'torch._dynamo'):
            logging.getLogger(name).setLevel(logging.WARNING)
    check_weights_args(parser, args)
    if args.opset is not None and args.opset < MIN_OPSET:
        parser.error(f'--opset {args.opset}: the exporter (torch.onnx dynamo) needs {MIN_OPSET} or more '
                     '(or leave it out for its default)')
    if os.path.isdir(args.output):
        parser.error(f'{args.output} is a folder: pass a file name (e.g. {os.path.join(args.output, "model.onnx")})')
    folder = os.path.dirname(os.path.abspath(args.output))
    if not os.path.isdir(folder):
        parser.error(f'{args.output}: no folder {folder}; create it first or pass another path')
    problem = write_problem(folder)
    if problem:
        parser.error(f'{args.output}: {problem}')
    check_model_args(parser, args)  # model name, sizes, batch size
    use_checkpoint_defaults(args)  # (class count and size of the checkpoint, as inference.py takes them)

    input_size = input_size_of(args)
    model = build_model(args, input_size, model_img_size(args))

    start = time.time()
    example = export_onnx(model, args.output, input_size, args.batch_size, args.dynamic_size, args.opset,
                          args.verbose)
    _logger.info(f'{args.model}: wrote {args.output} ({os.path.getsize(args.output) / 2 ** 20:.1f} MiB, '
                 f'input {input_size}{", dynamic height and width" if args.dynamic_size else ""}) '
                 f'in {time.time() - start:.1f}s')
    if args.check_forward:
        with torch.no_grad():
            reference = model(example)
        error = relative_error(reference, onnx_forward(args.output, example))
        print(f'check-forward: max abs error / max |output| = {error:.3g}')
        if error > 1e-4:
            raise SystemExit(f'{os.path.basename(__file__)}: ONNX Runtime output differs from PyTorch\'s '
                             f'(relative error {error:.3g} > 1e-4)')


if __name__ == '__main__':
    run_cli(main)

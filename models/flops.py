"""Multiply-accumulate (MAC) counting that includes the FFTs and the complex products.

Convention (MACs; FLOPs ~ 2x MACs):
- convolutions, linear layers and (batched) matrix products: one MAC per multiply-add, as
  fvcore / torch.utils.flop_counter count them (biases, norms and activations: 0);
- an n-point complex FFT: (n/2) log2(n) complex MACs (radix-2 butterflies), 4 real MACs each;
  a real-input rFFT or real-output irFFT: half of that; a multi-dimensional transform counts
  n as the product of its transformed sizes, once per transformed signal;
- a complex elementwise product: 4 real MACs per element (other elementwise ops: 0).
"""
import math
from typing import Dict, Tuple, Union

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from .layers import spectral_transform

__all__ = ['count_macs', 'MAC_CONVENTION']

MAC_CONVENTION = __doc__.split('Convention (MACs; FLOPs ~ 2x MACs):\n', 1)[1].strip()
aten = torch.ops.aten


def _raw(fn):
    fn._get_raw = True  # FlopCounterMode passes tensors instead of shapes
    return fn


def _fft_macs(signal_shape, dims, real_sided: bool) -> int:
    n = math.prod(signal_shape[d] for d in dims)
    signals = math.prod(signal_shape) // n
    complex_macs = signals * n / 2 * math.log2(max(n, 2))
    return int(4 * complex_macs * (0.5 if real_sided else 1.0))


@_raw
def _r2c(x, dim, *args, out_val=None, **kwargs):
    return 2 * _fft_macs(x.shape, dim, real_sided=True)  # FlopCounterMode counts FLOPs = 2 MACs


@_raw
def _c2r(x, dim, normalization, last_dim_size, *args, out_val=None, **kwargs):
    return 2 * _fft_macs(out_val.shape, dim, real_sided=True)


@_raw
def _c2c(x, dim, *args, out_val=None, **kwargs):
    return 2 * _fft_macs(x.shape, dim, real_sided=False)


@_raw
def _mul(a, b, *args, out_val=None, **kwargs):
    if isinstance(out_val, torch.Tensor) and out_val.is_complex():
        return 2 * 4 * out_val.numel()
    return 0


FFT_FORMULAS = {aten._fft_r2c: _r2c, aten._fft_c2r: _c2r, aten._fft_c2c: _c2c, aten.mul: _mul, aten.mul_: _mul}


@torch.no_grad()
def count_macs(
        model: nn.Module, input_size: Union[int, Tuple[int, int]] = 224, in_chans: int = 3,
        inputs=None) -> Tuple[int, Dict[str, int]]:
    """MACs of one forward pass of batch 1 (or of `inputs`), and per top-level module."""
    if inputs is None:
        size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
        device = next(model.parameters()).device
        inputs = torch.randn(1, in_chans, *size, device=device)
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False, custom_mapping=FFT_FORMULAS)
    # The FFT formulation's MACs (the paper's), whichever transform runs fastest on small maps.
    with counter, spectral_transform('fft'):
        model(inputs) if isinstance(inputs, torch.Tensor) else model(**inputs)
    model.train(was_training)
    per_module = {
        name: sum(v.values()) // 2 for name, v in counter.get_flop_counts().items()
        if name.count('.') == 1 or name == 'Global'}
    return counter.get_total_flops() // 2, per_module

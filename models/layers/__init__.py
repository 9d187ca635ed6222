"""Layers of the DFFormer family: the 2D real DFT (FFT or DFT matrices), the spectral mixing
Function and its filters, channels-last pointwise layers, StarReLU, and the token mixers."""
from .dft import DFT_MATMUL_MAX_PIXELS, FFT2, MatmulDFT2, dft_for, dft_matrices, spectral_transform
from .mixers import AFNO, DynamicFilter, GlobalFilter, SepConv
from .pointwise import ChannelMlp, pointwise, pointwise_to_channels_first
from .spectral import (
    filter_shape,
    global_filters,
    mix_filter_bases,
    resize_filter_bases,
    spectral_mix,
    to_spectral_dtype,
)
from .star_relu import StarReLU

__all__ = [
    'AFNO', 'ChannelMlp', 'DFT_MATMUL_MAX_PIXELS', 'DynamicFilter', 'FFT2', 'GlobalFilter', 'MatmulDFT2', 'SepConv',
    'StarReLU', 'dft_for', 'dft_matrices', 'filter_shape', 'global_filters', 'mix_filter_bases', 'pointwise',
    'pointwise_to_channels_first', 'resize_filter_bases', 'spectral_mix', 'spectral_transform', 'to_spectral_dtype',
]

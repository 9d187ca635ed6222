"""Layers of the DFFormer family: the 2D real DFT (FFT, 2D DFT matrices, or 1D DFT matrices on
channels-last maps), the spectral mixing Function and its filters, channels-last pointwise layers,
StarReLU, and the token mixers."""
from .dft import (
    CHANNELS_LAST_DFT_MAX_SIDE,
    DFT_MATMUL_MAX_PIXELS,
    FFT2,
    ChannelsLastDFT2,
    MatmulDFT2,
    channels_last_dft_for,
    dft_for,
    dft_matrices,
    separable_dft_matrices,
    spectral_transform,
)
from .mixers import AFNO, DynamicFilter, GlobalFilter, SepConv
from .plan import device_path, path_device_type
from .pointwise import ChannelMlp, pointwise, pointwise_to_channels_first
from .spectral import (
    filter_shape,
    global_filters,
    mix_filter_bases,
    resize_filter_bases,
    spectral_mix,
    spectral_mix_channels_last,
    to_spectral_dtype,
)
from .star_relu import StarReLU

__all__ = [
    'AFNO', 'CHANNELS_LAST_DFT_MAX_SIDE', 'ChannelMlp', 'ChannelsLastDFT2', 'DFT_MATMUL_MAX_PIXELS', 'DynamicFilter',
    'FFT2', 'GlobalFilter', 'MatmulDFT2', 'SepConv', 'StarReLU', 'channels_last_dft_for', 'dft_for', 'dft_matrices',
    'filter_shape', 'global_filters', 'mix_filter_bases', 'pointwise', 'pointwise_to_channels_first',
    'resize_filter_bases', 'separable_dft_matrices', 'spectral_mix', 'spectral_mix_channels_last',
    'spectral_transform', 'to_spectral_dtype', 'device_path', 'path_device_type',
]

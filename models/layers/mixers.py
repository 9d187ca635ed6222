"""Token mixers of DFFormer, CDFFormer and the ablations. All take and return channels-last
(B, H, W, C) maps; the parameter names are those of the authors' release."""
from typing import Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import Mlp, to_2tuple
from timm.models import register_notrace_module
from torch import Tensor

from .dft import FFT2, dft_for
from .pointwise import pointwise, pointwise_to_channels_first
from .spectral import (
    channels_last_dft,
    filter_shape,
    global_filters,
    mix_filter_bases,
    spectral_mix,
    spectral_mix_channels_last,
    to_spectral_dtype,
)
from .star_relu import StarReLU

__all__ = ['AFNO', 'DynamicFilter', 'GlobalFilter', 'SepConv']


@register_notrace_module  # FX leaf: chooses its layout by dtype and grad mode
class DynamicFilter(nn.Module):
    """Dynamic filter: pwconv1 -> act -> rFFT2 -> per-image filters -> irFFT2 -> pwconv2. The filters
    are a softmax-weighted mix of `num_filters` shared complex bases, with weights predicted per
    image and channel from the globally pooled input; with num_filters=None there is no routing
    and one learned filter per expanded channel (GFNet's global filter, see GlobalFilter)."""

    def __init__(
            self,
            dim: int,
            expansion_ratio: float = 2,
            reweight_expansion_ratio: float = .25,
            act_layer=StarReLU,
            num_filters: Optional[int] = 4,
            size: Union[int, Tuple[int, int]] = 14,
    ):
        super().__init__()
        self.med_channels = int(expansion_ratio * dim)
        self.num_filters = num_filters or self.med_channels
        self.pwconv1 = nn.Linear(dim, self.med_channels, bias=False)
        self.act1 = act_layer()
        self.reweight = None if num_filters is None else Mlp(
            dim, int(reweight_expansion_ratio * dim), num_filters * self.med_channels,
            act_layer=StarReLU, bias=False,
        )
        self.complex_weights = nn.Parameter(
            torch.randn(*filter_shape(to_2tuple(size)), self.num_filters, 2) * 0.02)
        self.pwconv2 = nn.Linear(self.med_channels, dim, bias=False)

    def routing(self, x: Tensor) -> Optional[Tensor]:
        """Softmax weights (B, num_filters, med_channels) of the bases for x, None without routing."""
        if self.reweight is None:
            return None
        return self.reweight(x.mean(dim=(1, 2))).view(x.shape[0], self.num_filters, -1).softmax(dim=1)

    @torch.jit.unused
    def filters(self, x: Tensor) -> Tensor:
        """The complex filters applied to x: (B, M, h, w), or (M, h, w) without routing."""
        size = filter_shape((x.shape[1], x.shape[2]))
        routing = self.routing(x)
        if routing is None:
            return global_filters(self.complex_weights, size)
        return mix_filter_bases(routing, self.complex_weights, size)

    def forward(self, x: Tensor) -> Tensor:
        routing = self.routing(x)
        if not torch.jit.is_scripting():
            dft = channels_last_dft(x, self.parameters())
            if dft is not None:  # half-precision inference: the maps stay channels-last
                y = self.act1(pointwise(x, self.pwconv1.weight))
                return spectral_mix_channels_last(y, routing, self.complex_weights, self.pwconv2.weight, dft)
        y = self.act1(pointwise_to_channels_first(x, self.pwconv1.weight))
        return spectral_mix(y, routing, self.complex_weights, self.pwconv2.weight, x.dtype)


class GlobalFilter(DynamicFilter):
    """GFNet-style global filter: the dynamic filter without routing."""

    def __init__(
            self,
            dim: int,
            expansion_ratio: float = 2,
            act_layer=StarReLU,
            size: Union[int, Tuple[int, int]] = 14,
    ):
        super().__init__(dim, expansion_ratio, act_layer=act_layer, num_filters=None, size=size)


class SepConv(nn.Module):
    """Inverted separable convolution (MobileNetV2), the ConvFormer mixer used in CDFFormer."""

    def __init__(
            self,
            dim: int,
            expansion_ratio: float = 2,
            act_layer=StarReLU,
            kernel_size: int = 7,
    ):
        super().__init__()
        med_channels = int(expansion_ratio * dim)
        self.pwconv1 = nn.Linear(dim, med_channels, bias=False)
        self.act1 = act_layer()
        self.dwconv = nn.Conv2d(
            med_channels, med_channels, kernel_size, padding=kernel_size // 2, groups=med_channels, bias=False)
        self.pwconv2 = nn.Linear(med_channels, dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        # All three convs on channels_last views of NHWC tensors: oneDNN's fast layout, no copies.
        y = self.dwconv(self.act1(pointwise(x, self.pwconv1.weight)).permute(0, 3, 1, 2))
        return pointwise(y.permute(0, 2, 3, 1), self.pwconv2.weight)


@register_notrace_module  # FX leaf: chooses its transform by map size
class AFNO(nn.Module):
    """Adaptive Fourier Neural Operator mixer (Guibas et al. 2022), the `_afno` ablation.

    A block-diagonal two-layer complex MLP over channels at every frequency, then soft
    shrinkage; weights w1, w2 (2, blocks, d, d) and biases b1, b2 (2, blocks, d) hold the real
    (index 0) and imaginary (index 1) parts. The spectrum comes from the same transforms as the
    dynamic filter's (real planes), so every complex product is written as real ones.
    """

    def __init__(
            self,
            dim: int,
            expansion_ratio: float = 2,
            act_layer=StarReLU,
            num_blocks: int = 8,
            sparsity_threshold: float = 0.01,
    ):
        super().__init__()
        self.med_channels = int(expansion_ratio * dim)
        if self.med_channels % num_blocks:
            raise ValueError(f'AFNO: {self.med_channels} channels do not split into {num_blocks} blocks')
        self.num_blocks = num_blocks
        self.sparsity_threshold = sparsity_threshold
        block = self.med_channels // num_blocks
        self.pwconv1 = nn.Linear(dim, self.med_channels, bias=False)
        self.act1 = act_layer()
        self.w1 = nn.Parameter(0.02 * torch.randn(2, num_blocks, block, block))
        self.b1 = nn.Parameter(0.02 * torch.randn(2, num_blocks, block))
        self.w2 = nn.Parameter(0.02 * torch.randn(2, num_blocks, block, block))
        self.b2 = nn.Parameter(0.02 * torch.randn(2, num_blocks, block))
        self.pwconv2 = nn.Linear(self.med_channels, dim, bias=False)

    @staticmethod
    def _complex_block_linear(z: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        """z (..., blocks, 2d): real parts then imaginary parts of each block's d channels, times
        the complex block weights (2, blocks, d, d) + bias (2, blocks, d), as one real product:
        [re, im] @ [[w_re, w_im], [-w_im, w_re]]."""
        w_re, w_im = weight.to(z.dtype).unbind(0)
        real_weight = torch.cat((torch.cat((w_re, w_im), -1), torch.cat((-w_im, w_re), -1)), -2)
        return torch.einsum('...ni,nio->...no', z, real_weight) + torch.cat(bias.to(z.dtype).unbind(0), -1)

    def _spectral_mlp(self, spectrum: Tensor) -> Tensor:
        """The block MLP and shrinkage on a spectrum as real planes (B, C, F * 2) -> same shape."""
        B, C, K2 = spectrum.shape
        blocks, d = self.num_blocks, C // self.num_blocks
        # (B, C, F, 2) -> (B, F, blocks, [re d, im d])
        z = spectrum.view(B, blocks, d, K2 // 2, 2).permute(0, 3, 1, 4, 2).reshape(B, K2 // 2, blocks, 2 * d)
        z = F.relu(self._complex_block_linear(z, self.w1, self.b1))
        z = F.softshrink(self._complex_block_linear(z, self.w2, self.b2), lambd=self.sparsity_threshold)
        return z.view(B, K2 // 2, blocks, 2, d).permute(0, 2, 4, 1, 3).reshape(B, C, K2)

    def forward(self, x: Tensor) -> Tensor:
        y = to_spectral_dtype(self.act1(self.pwconv1(x))).permute(0, 3, 1, 2)  # (B, C, H, W)
        size = (y.shape[2], y.shape[3])
        if torch.jit.is_scripting():  # (TorchScript reads no Python-side choice: the FFT)
            fft = FFT2(y.dtype)
            out = fft.inverse(self._spectral_mlp(fft.forward(y)), size)
        else:
            dft = dft_for(size, y.dtype, y.device)
            out = dft.inverse(self._spectral_mlp(dft.forward(y)), size)
        return self.pwconv2((out + y).permute(0, 2, 3, 1).to(x.dtype))

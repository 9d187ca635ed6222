"""The spectral token mixing of DFFormer and GFFormer and its filters.

    out = irDFT2(rDFT2(y) * filters) x proj_weight^T

with per-image filters = sum_n routing[:, n, m] * bases[..., n] (dynamic filter) or the bases
themselves (global filter, routing None). In eager mode it runs as one autograd Function that
keeps only its real input, the routing weights and the small parameters for backward: the
spectrum, the filters and the filtered spectrum (each as large as the input) are recomputed,
and the adjoint transforms are written out. Compared in float64 with the plain formula in
tests/test_spectral_equivalence.py.
"""
from typing import Iterable, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from timm.models import register_notrace_function
from torch import Tensor

from .dft import FFT2, ChannelsLastDFT2, MatmulDFT2, channels_last_dft_for, dft_for

__all__ = ['channels_last_dft', 'filter_shape', 'global_filters', 'mix_filter_bases', 'resize_filter_bases',
           'spectral_dtype', 'spectral_mix', 'spectral_mix_channels_last', 'to_spectral_dtype']


def filter_shape(size: Tuple[int, int]) -> Tuple[int, int]:
    """rFFT2 shape of an (H, W) feature map."""
    return size[0], size[1] // 2 + 1


@register_notrace_function  # FX leaf: branches on shapes
def resize_filter_bases(bases: Tensor, size: Tuple[int, int]) -> Tensor:
    """Resize complex filter bases (h, w, K, 2) to (size[0], size[1], K, 2).

    Bicubic with align_corners=True on the real and imaginary parts as channels, as the
    authors' loader does for dense tasks. Returns `bases` itself when already at `size`.
    """
    h, w, k, _ = bases.shape
    if h == size[0] and w == size[1]:
        return bases
    planes = bases.permute(2, 3, 0, 1).reshape(1, k * 2, h, w)
    planes = F.interpolate(planes, size=size, mode='bicubic', align_corners=True)
    return planes.reshape(k, 2, size[0], size[1]).permute(2, 3, 0, 1)


def spectral_dtype(x: Tensor) -> torch.dtype:
    """Transforms and filters run in float32, or float64 for a float64 model: a half-precision
    model keeps them in float32 (CPU FFTs have no half precision, cuFFT's needs power-of-2 sizes)."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


@register_notrace_function  # FX leaf: branches on the dtype
def to_spectral_dtype(x: Tensor) -> Tensor:
    return x.to(spectral_dtype(x))


def _basis_planes(bases: Tensor, size: Tuple[int, int]) -> Tensor:
    """Bases (h0, w0, N, 2) resized to `size`, in the spectral dtype, as rows (N, h * w * 2) of
    interleaved real and imaginary parts (the layout of `view_as_real` of an rFFT2)."""
    bases = resize_filter_bases(bases.to(spectral_dtype(bases)), size)
    return bases.permute(2, 0, 1, 3).reshape(bases.shape[2], -1)


def _filter_planes(routing: Optional[Tensor], planes: Tensor) -> Tensor:
    """Filters as real planes: (B, M, h * w * 2) = routing (B, N, M)^T x planes (N, h * w * 2) for
    the dynamic filter (one real matmul), or the planes themselves (M, h * w * 2) for the global one."""
    if routing is None:
        return planes
    return torch.matmul(routing.transpose(1, 2), planes)


def _autocast_enabled(x: Tensor) -> bool:
    if torch.jit.is_scripting():
        return False
    return torch.is_autocast_enabled(x.device.type)


def _needs_grad(tensors: Iterable[Tensor]) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


@torch.jit.unused
def _matmul_float32(a: Tensor, b: Tensor) -> Tensor:
    with torch.autocast(a.device.type, enabled=False):
        return torch.matmul(a.float(), b.float())


@register_notrace_function
def mix_filter_bases(routing: Tensor, bases: Tensor, size: Tuple[int, int]) -> Tensor:
    """Per-image complex filters (B, M, h, w) = sum_n routing[b, n, m] * bases[h, w, n].

    routing: (B, N, M) softmax weights; bases: (h0, w0, N, 2). Float32 even under autocast,
    like the original's complex64 einsum.
    """
    planes = _basis_planes(bases, size)
    if _autocast_enabled(routing):
        filters = _matmul_float32(routing.transpose(1, 2), planes)
    else:
        filters = _filter_planes(routing.to(planes.dtype), planes)
    return torch.view_as_complex(filters.view(routing.shape[0], routing.shape[2], size[0], size[1], 2))


@register_notrace_function
def global_filters(bases: Tensor, size: Tuple[int, int]) -> Tensor:
    """Static complex filters (M, h, w) from bases (h0, w0, M, 2)."""
    planes = _basis_planes(bases, size)
    return torch.view_as_complex(planes.view(planes.shape[0], size[0], size[1], 2))


def _complex_mul(a: Tensor, b: Tensor, inplace: bool = False) -> Tensor:
    """Elementwise product of spectra given as real (..., K2) interleaved planes; `inplace`
    writes it into `a` (a fresh buffer costs page faults as large as the spectrum)."""
    ac = torch.view_as_complex(a.view(a.shape[:-1] + (-1, 2)))
    bc = torch.view_as_complex(b.view(b.shape[:-1] + (-1, 2)))
    if inplace:
        ac.mul_(bc)
        return a
    return torch.view_as_real(ac * bc).flatten(-2)


def _conj_(a: Tensor) -> Tensor:
    """Complex conjugate of interleaved planes, in place (torch's lazy conj() is materialised
    by a copy as soon as it meets a product)."""
    a.view(a.shape[:-1] + (-1, 2))[..., 1].neg_()
    return a


def _mix(y: Tensor, filters: Tensor, proj_weight: Tensor, dft: Union[FFT2, MatmulDFT2]) -> Tensor:
    """irDFT2(proj_weight x (rDFT2(y) * filters)): (B, M, H, W) -> (B, C, H, W), in the transform's dtype.

    The product with the filters runs in their dtype (float32 or float64), the projection in
    proj_weight's (half precision: a GEMM like any linear layer under autocast). The projection
    (C, M) is real-linear and so commutes with the inverse transform: applying it to the half
    spectrum first inverse-transforms C instead of M channels.
    """
    # (in place: the transform's output is a fresh buffer, and autograd records none of this)
    spectrum = _complex_mul(dft.forward(y).to(filters.dtype), filters, inplace=True)
    spectrum = torch.bmm(proj_weight.expand(y.shape[0], -1, -1), spectrum.to(proj_weight.dtype))
    return dft.inverse(spectrum, (y.shape[2], y.shape[3]))


class _SpectralMix(torch.autograd.Function):
    """`_mix` saving only its real input (in its own dtype), the routing weights and the (small)
    parameters: the spectrum, the per-image filters and the filtered spectrum are recomputed in
    backward, whose transforms and products run in the dtypes of the forward."""

    @staticmethod
    def forward(ctx, y, routing, planes, proj_weight, dft):
        ctx.save_for_backward(y, routing, planes, proj_weight)
        ctx.dft = dft
        return _mix(y, _filter_planes(routing, planes), proj_weight, dft)

    @staticmethod
    def backward(ctx, grad):
        y, routing, planes, proj_weight = ctx.saved_tensors
        dft = ctx.dft
        B, M, H, W = y.shape
        grad_y = grad_routing = grad_planes = grad_proj = None
        with torch.autocast(y.device.type, enabled=False):  # (a backward called inside autocast)
            filters = _filter_planes(routing, planes)
            spectrum = dft.forward(y).to(planes.dtype)
            grad_projected = dft.inverse_adjoint(grad).to(proj_weight.dtype)  # (B, C, K2)
            if ctx.needs_input_grad[3]:
                filtered = _complex_mul(spectrum, filters).to(proj_weight.dtype)
                grad_proj = torch.bmm(grad_projected, filtered.transpose(1, 2)).sum(0, dtype=planes.dtype)
                del filtered
            # (B, M, K2), a fresh buffer
            grad_filtered = torch.bmm(proj_weight.t().expand(B, -1, -1), grad_projected).to(planes.dtype)
            if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
                # grad_filtered * conj(spectrum), in the spectrum's buffer (not needed after)
                grad_filters = _complex_mul(_conj_(spectrum), grad_filtered, inplace=True)
                if routing is None:
                    grad_planes = grad_filters.sum(0)
                else:
                    if ctx.needs_input_grad[1]:
                        grad_routing = torch.matmul(grad_filters, planes.t()).transpose(1, 2)
                    if ctx.needs_input_grad[2]:
                        grad_planes = torch.bmm(routing, grad_filters).sum(0)
            if ctx.needs_input_grad[0]:
                # (the global filters may share memory with the parameter: conjugate a copy)
                conj_filters = _conj_(filters if routing is not None else filters.clone())
                grad_filtered = _complex_mul(grad_filtered, conj_filters, inplace=True)
                grad_y = dft.forward_adjoint(grad_filtered, (H, W)).to(y.dtype)
        # (autograd casts each gradient to its input's dtype)
        return grad_y, grad_routing, grad_planes, grad_proj, None


def _complex_mul_planes_(a: Tensor, b: Tensor) -> Tensor:
    """a *= b, in place, for spectra with their real and imaginary planes at dim 2, (B, H, 2, K, C)."""
    a_re, a_im, b_re, b_im = a[:, :, 0], a[:, :, 1], b[:, :, 0], b[:, :, 1]
    cross = a_re * b_im
    a_re.mul_(b_re).addcmul_(a_im, b_im, value=-1)
    a_im.mul_(b_re).add_(cross)
    return a


@torch.jit.unused
def channels_last_dft(x: Tensor, tensors: Iterable[Tensor]) -> Optional[ChannelsLastDFT2]:
    """The channels-last transform for the (B, H, W, C) maps x of a half-precision model in inference
    (no autocast, no gradient for x or `tensors`: the mixer's parameters), else None."""
    if _autocast_enabled(x) or _needs_grad([x, *tensors]):
        return None
    return channels_last_dft_for((x.shape[1], x.shape[2]), x.dtype, x.device)


@torch.jit.unused
def spectral_mix_channels_last(y: Tensor, routing: Optional[Tensor], bases: Tensor, proj_weight: Tensor,
                               dft: ChannelsLastDFT2) -> Tensor:
    """`spectral_mix` of channels-last y (B, H, W, M) by `dft`, without autograd: for half-precision
    inference, with the filters, their product and the projection in y's dtype (like every other
    layer of a half-precision model). Returns (B, H, W, C)."""
    B, H, W, M = y.shape
    K = W // 2 + 1
    planes = _basis_planes(bases, (H, K))  # (N, H * K * 2): (kh, kw, real / imag)
    planes = planes.view(-1, H, K, 2).transpose(2, 3).reshape(planes.shape[0], -1).t().to(y.dtype)  # (H2K, N)
    filters = planes if routing is None else torch.matmul(planes, routing.to(y.dtype))  # (H2K, M) or (B, H2K, M)
    spectrum = _complex_mul_planes_(dft.forward(y), filters.view(-1, H, 2, K, M))
    projected = F.linear(spectrum.view(B, -1, M), proj_weight.to(y.dtype))  # (B, H2K, C)
    return dft.inverse(projected.view(B, H, 2, K, -1), (H, W))


def _low_precision(y: Tensor) -> Optional[torch.dtype]:
    """bfloat16 / float16 when y comes from a half-precision model or runs under autocast, else None."""
    if y.dtype in (torch.bfloat16, torch.float16):
        return y.dtype if not _autocast_enabled(y) else torch.get_autocast_dtype(y.device.type)
    if y.dtype == torch.float32 and _autocast_enabled(y):
        return torch.get_autocast_dtype(y.device.type)
    return None


@torch.jit.unused
def _spectral_mix_eager(y: Tensor, routing: Optional[Tensor], bases: Tensor, proj_weight: Tensor,
                        out_dtype: torch.dtype) -> Tensor:
    H, W = y.shape[2:]
    planes = _basis_planes(bases, filter_shape((H, W)))
    low = _low_precision(y)
    if low is None:
        y = y.to(planes.dtype)
    elif _autocast_enabled(y):
        out_dtype = low  # (like the projection's nn.Linear under autocast)
    # Half precision: the projection and the DFT matrices of small maps in it, like the linear
    # layers; the FFT, the filters and the products with them in float32 (error measured
    # against ConvFormer's in tests/test_precision.py).
    proj_weight = proj_weight.to(low or planes.dtype)
    if routing is not None:
        routing = routing.to(planes.dtype)
    dft = dft_for((H, W), low or planes.dtype, y.device)
    inputs = (y, planes, proj_weight) + ((routing,) if routing is not None else ())
    with torch.autocast(y.device.type, enabled=False):  # (the dtypes above are the choice)
        if _needs_grad(inputs):
            out = _SpectralMix.apply(y, routing, planes, proj_weight, dft)
        else:
            out = _mix(y, _filter_planes(routing, planes), proj_weight, dft)
    return out.permute(0, 2, 3, 1).to(out_dtype)


@register_notrace_function  # FX leaf: branches on autocast state and dtypes
def spectral_mix(
        y: Tensor, routing: Optional[Tensor], bases: Tensor, proj_weight: Tensor, out_dtype: torch.dtype,
) -> Tensor:
    """The spectral token mixing followed by the projection (see the module's docstring).

    y: (B, M, H, W) channels-first; routing (B, N, M) or None; bases (h0, w0, N or M, 2);
    proj_weight (C, M). Returns (B, H, W, C) channels-last in `out_dtype` (under autocast in the
    autocast dtype, as the original's nn.Linear projection).
    """
    if not torch.jit.is_scripting():
        return _spectral_mix_eager(y, routing, bases, proj_weight, out_dtype)
    # TorchScript holds no transform objects and reads no Python-side choice: the plain FFT formula.
    H, W = y.shape[2:]
    size = filter_shape((H, W))
    planes = _basis_planes(bases, size)
    y, proj_weight = y.to(planes.dtype), proj_weight.to(planes.dtype)
    if routing is not None:
        routing = routing.to(planes.dtype)
    filters = torch.view_as_complex(_filter_planes(routing, planes).unflatten(-1, [size[0], size[1], 2]))
    out = torch.fft.irfft2(torch.fft.rfft2(y, norm='ortho') * filters, s=(H, W), norm='ortho')
    return F.linear(out.permute(0, 2, 3, 1), proj_weight).to(out_dtype)

"""DFFormer, CDFFormer and GFFormer.

"FFT-based Dynamic Token Mixer for Vision", Yuki Tatsunami and Masato Taki, AAAI 2024
(https://arxiv.org/abs/2303.03932). MetaFormer models whose token mixer filters the rFFT2 of
the (expanded) features with a per-image, per-channel mix of learned complex filter bases.

State-dict names and shapes are those of the authors' release, so their checkpoints load strictly.
Inside the stages tensors are channels-last (B, H, W, C), as in the original.

Where this differs from the original code (outputs equal within float32 round-off; the plain
formulas are compared in float64 in tests/test_spectral_equivalence.py):
- the spectral mixing is one autograd Function that keeps only its real input and the routing
  weights for backward (the spectrum, filters and filtered spectrum are recomputed) and StarReLU
  keeps only its input: 0.68x ConvFormer's saved activations rather than 1.17x;
- maps of at most DFT_MATMUL_MAX_PIXELS are transformed by real DFT matrices (one GEMM), larger
  ones by FFT over the two innermost dims of a channels-first tensor, which pwconv1 writes
  directly (a transposed matmul, no copy); `spectral_transform('matmul')` forces the matrices
  everywhere (MatMul nodes for ONNX);
- the per-image filter is one real matmul (routing weights x bases), not a complex einsum;
- in float32, pwconv2 is applied to the filtered half spectrum before the inverse transform (both
  are real-linear, so they commute), which then transforms C rather than 2C channels;
- MLPs and pointwise layers are 1x1 convolutions of channels_last views (oneDNN) with the
  nn.Linear parameters of the original;
- filters are resized on the fly for any input size, as the authors did for dense tasks only.
"""
import math
import re
from contextlib import contextmanager
from functools import partial
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import DropPath, Mlp, to_2tuple, trunc_normal_
from timm.models import (
    build_model_with_cfg,
    checkpoint_seq,
    clean_state_dict,
    generate_default_cfgs,
    metaformer,
    register_model,
    register_notrace_function,
    register_notrace_module,
)
from timm.models._features import feature_take_indices  # (timm 1.0 exports no public alias)
from timm.models.metaformer import MlpHead, Scale, SquaredReLU
from torch import Tensor

__all__ = ['DFFormer', 'DFFormerDense', 'DFFormerTrunk', 'resize_filter_bases', 'checkpoint_filter_fn']


# ----------------------------------------------------------------------------------------------
# Spectral helpers. Registered as FX leaves: they branch on tensor shapes and autocast state.

@register_notrace_function
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


def _spectral_dtype(x: Tensor) -> torch.dtype:
    """FFTs and filters run in float32, or float64 for a float64 model: a half-precision model
    keeps them in float32 (CPU FFTs have no half precision, cuFFT's needs power-of-2 sizes)."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


@register_notrace_function  # FX leaf: branches on the dtype
def to_spectral_dtype(x: Tensor) -> Tensor:
    return x.to(_spectral_dtype(x))


def _autocast_enabled(x: Tensor) -> bool:
    if torch.jit.is_scripting():
        return False
    return torch.is_autocast_enabled(x.device.type)


@torch.jit.unused
def _matmul_float32(a: Tensor, b: Tensor) -> Tensor:
    with torch.autocast(a.device.type, enabled=False):
        return torch.matmul(a.float(), b.float())


def _basis_planes(bases: Tensor, size: Tuple[int, int]) -> Tensor:
    """Bases (h0, w0, N, 2) resized to `size`, in the spectral dtype, as rows (N, h * w * 2) of
    interleaved real and imaginary parts (the layout of `view_as_real` of an rFFT2)."""
    bases = resize_filter_bases(bases.to(_spectral_dtype(bases)), size)
    return bases.permute(2, 0, 1, 3).reshape(bases.shape[2], -1)


def _filter_planes(routing: Optional[Tensor], planes: Tensor) -> Tensor:
    """Filters as real planes: (B, M, h * w * 2) = routing (B, N, M)^T x planes (N, h * w * 2) for
    the dynamic filter (one real matmul), or the planes themselves (M, h * w * 2) for the global one."""
    if routing is None:
        return planes
    return torch.matmul(routing.transpose(1, 2), planes)


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


# Maps of at most this many pixels (7x7 at 224 px, 8x8 at 256) are transformed by matrix
# multiplication rather than FFT: the real DFT matrices are small and one GEMM beats the FFT's
# passes. At 14x14 the FFT is faster again (measured on CPU with both, `tools/` README).
DFT_MATMUL_MAX_PIXELS = 64
_transform_override: Optional[str] = None
_DFT_CACHE: Dict[Tuple[int, int, torch.dtype, torch.device], Tuple[Tensor, Tensor]] = {}


@contextmanager
def spectral_transform(kind: str):
    """Within the block, every spectral mixer transforms its maps by `kind`: 'matmul' (real DFT
    matrices: MatMul nodes, e.g. for ONNX export) or 'fft' (e.g. to count the FFT formulation's
    MACs), instead of choosing by map size."""
    global _transform_override
    if kind not in ('matmul', 'fft'):
        raise ValueError(f"spectral_transform: kind must be 'matmul' or 'fft' (got {kind!r})")
    before, _transform_override = _transform_override, kind
    try:
        yield
    finally:
        _transform_override = before


def _column_weights(width: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """Weights of the rFFT columns in the inverse: 2 for those standing for a conjugate pair,
    1 for the zero (and, for even widths, the Nyquist) frequency."""
    # (no branch on the width's parity: traced with a symbolic width, e.g. for ONNX, one graph
    # serves odd and even widths)
    k = torch.arange(width // 2 + 1, device=device)
    return torch.where((k == 0) | (2 * k == width), 1., 2.).to(dtype)


def dft_matrices(height: int, width: int, dtype: torch.dtype = torch.float64,
                 device: Optional[torch.device] = None) -> Tuple[Tensor, Tensor]:
    """Real matrices of the orthonormal 2D real DFT of an (height, width) map, both (H * W, K2)
    with K2 = H * (W // 2 + 1) * 2 columns in `view_as_real(rfft2(.))` order:

        view_as_real(rfft2(x)).flatten() == x.flatten() @ forward
        irfft2(Z, s=(H, W)).flatten() == inverse_t @ view_as_real(Z).flatten()
    """
    w_half = width // 2 + 1
    rows = torch.arange(height, device=device)
    cols = torch.arange(width, device=device)
    # Phases in turns, reduced exactly in integers before the division.
    turns_h = (rows[:, None] * rows[None, :] % height).to(dtype) / height  # (h, kh)
    turns_w = (cols[:, None] * cols[None, :w_half] % width).to(dtype) / width  # (w, kw)
    angle = (2 * math.pi) * (turns_h[:, None, :, None] + turns_w[None, :, None, :])  # (h, w, kh, kw)
    scale = (height * width) ** -0.5
    forward = torch.stack((angle.cos() * scale, angle.sin() * -scale), dim=-1)  # (h, w, kh, kw, 2)
    inverse_t = forward * _column_weights(width, dtype, device)[:, None]
    return forward.reshape(height * width, -1), inverse_t.reshape(height * width, -1)


@torch.jit.unused
def _cached_dft_matrices(height: int, width: int, dtype: torch.dtype, device: torch.device) -> Tuple[Tensor, Tensor]:
    key = (height, width, dtype, device)
    if key not in _DFT_CACHE:
        # Built in float64 on the CPU, then cast: exact to the last bit of the dtype.
        _DFT_CACHE[key] = tuple(m.to(device, dtype) for m in dft_matrices(height, width))
    return _DFT_CACHE[key]


def _rdft2(y: Tensor, matrices: Optional[Tuple[Tensor, Tensor]]) -> Tensor:
    """(B, M, H, W) -> spectrum as real (B, M, K2)."""
    B, M = y.shape[:2]
    if matrices is None:
        return torch.view_as_real(torch.fft.rfft2(y, norm='ortho')).view(B, M, -1)
    return torch.matmul(y.reshape(B, M, -1), matrices[0])


def _irdft2(spectrum: Tensor, size: Tuple[int, int], matrices: Optional[Tuple[Tensor, Tensor]]) -> Tensor:
    """Spectrum as real (B, C, K2) -> (B, C, H, W)."""
    B, C = spectrum.shape[:2]
    if matrices is None:
        spectrum = torch.view_as_complex(spectrum.view(B, C, size[0], size[1] // 2 + 1, 2))
        return torch.fft.irfft2(spectrum, s=size, norm='ortho')
    return torch.matmul(spectrum, matrices[1].t()).view(B, C, size[0], size[1])


def _rdft2_adjoint(grad: Tensor, size: Tuple[int, int], matrices: Optional[Tuple[Tensor, Tensor]]) -> Tensor:
    """Adjoint of `_rdft2`: (B, M, K2) -> (B, M, H, W); overwrites `grad`."""
    B, M = grad.shape[:2]
    if matrices is None:
        grad = torch.view_as_complex(grad.view(B, M, size[0], size[1] // 2 + 1, 2))
        grad = grad.div_(_column_weights(size[1], grad.real.dtype, grad.device))  # (a temporary of backward)
        return torch.fft.irfft2(grad, s=size, norm='ortho')
    return torch.matmul(grad, matrices[0].t()).view(B, M, size[0], size[1])


def _irdft2_adjoint(grad: Tensor, matrices: Optional[Tuple[Tensor, Tensor]]) -> Tensor:
    """Adjoint of `_irdft2`: (B, C, H, W) -> (B, C, K2)."""
    B, C, H, W = grad.shape
    if matrices is None:
        spectrum = torch.fft.rfft2(grad, norm='ortho').mul_(_column_weights(W, grad.dtype, grad.device))
        return torch.view_as_real(spectrum).view(B, C, -1)
    return torch.matmul(grad.reshape(B, C, H * W), matrices[1])


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


def _mix(y: Tensor, filters: Tensor, proj_weight: Tensor, matrices: Optional[Tuple[Tensor, Tensor]]) -> Tensor:
    """irDFT2(proj_weight x (rDFT2(y) * filters)): (B, M, H, W) -> (B, C, H, W).

    The projection (C, M) is real-linear and so commutes with the inverse transform: applying
    it to the half spectrum first inverse-transforms C instead of M channels.
    """
    # (in place on the fresh spectrum, unless autograd records this: the TorchScript path)
    spectrum = _complex_mul(_rdft2(y, matrices), filters, inplace=not torch.is_grad_enabled())
    spectrum = torch.bmm(proj_weight.expand(y.shape[0], -1, -1), spectrum)
    return _irdft2(spectrum, (y.shape[2], y.shape[3]), matrices)


class _SpectralMix(torch.autograd.Function):
    """`_mix` saving only its real input, the routing weights and the (small) parameters: the
    spectrum, the per-image filters and the filtered spectrum (each as large as the input) are
    recomputed in backward, whose adjoint transforms are written out."""

    @staticmethod
    def forward(ctx, y, routing, planes, proj_weight, matrices):
        ctx.save_for_backward(y, routing, planes, proj_weight)
        ctx.matrices = matrices
        return _mix(y, _filter_planes(routing, planes), proj_weight, matrices)

    @staticmethod
    def backward(ctx, grad):
        y, routing, planes, proj_weight = ctx.saved_tensors
        matrices = ctx.matrices
        B, M, H, W = y.shape
        grad_y = grad_routing = grad_planes = grad_proj = None
        with torch.autocast(y.device.type, enabled=False):  # (a backward called inside autocast)
            filters = _filter_planes(routing, planes)
            spectrum = _rdft2(y, matrices)
            grad_projected = _irdft2_adjoint(grad, matrices)  # (B, C, K2)
            if ctx.needs_input_grad[3]:
                filtered = _complex_mul(spectrum, filters)
                grad_proj = torch.bmm(grad_projected, filtered.transpose(1, 2)).sum(0)
                del filtered
            grad_filtered = torch.bmm(proj_weight.t().expand(B, -1, -1), grad_projected)  # (B, M, K2)
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
                grad_y = _rdft2_adjoint(grad_filtered, (H, W), matrices)
        return grad_y, grad_routing, grad_planes, grad_proj, None


@torch.jit.unused
def _spectral_mix_eager(y: Tensor, routing: Optional[Tensor], planes: Tensor, proj_weight: Tensor) -> Tensor:
    H, W = y.shape[2:]
    matrices = None
    use_matmul = H * W <= DFT_MATMUL_MAX_PIXELS if _transform_override is None else _transform_override == 'matmul'
    if use_matmul:
        if torch.compiler.is_compiling():  # traced (torch.compile, torch.export): from the sizes, by ops
            matrices = dft_matrices(H, W, y.dtype, y.device)
        else:
            matrices = _cached_dft_matrices(H, W, y.dtype, y.device)
    inputs = (y, planes, proj_weight) + ((routing,) if routing is not None else ())
    if torch.is_grad_enabled() and any(t.requires_grad for t in inputs):
        return _SpectralMix.apply(y, routing, planes, proj_weight, matrices)
    return _mix(y, _filter_planes(routing, planes), proj_weight, matrices)


@register_notrace_function
def spectral_mix(
        y: Tensor, routing: Optional[Tensor], bases: Tensor, proj_weight: Tensor, out_dtype: torch.dtype,
) -> Tensor:
    """The spectral token mixing of DFFormer / GFFormer followed by the projection:
    irFFT2(rFFT2(y) * filters) x proj_weight^T, filters = sum_n routing[:, n, m] * bases[..., n]
    (dynamic) or bases[..., m] (global, routing None).

    y: (B, M, H, W) channels-first; bases (h0, w0, N or M, 2); proj_weight (C, M).
    Returns (B, H, W, C) channels-last in `out_dtype`.
    """
    H, W = y.shape[2:]
    size = _filter_shape((H, W))
    if _autocast_enabled(y):
        # The original's order under autocast: FFTs and filters in float32, the projection in
        # autocast precision after the inverse FFT.
        filters = global_filters(bases, size) if routing is None else mix_filter_bases(routing, bases, size)
        y = torch.fft.irfft2(torch.fft.rfft2(y.float(), norm='ortho') * filters, s=(H, W), norm='ortho')
        return F.linear(y.permute(0, 2, 3, 1), proj_weight)
    planes = _basis_planes(bases, size)
    y, proj_weight = y.to(planes.dtype), proj_weight.to(planes.dtype)
    if routing is not None:
        routing = routing.to(planes.dtype)
    if torch.jit.is_scripting():
        out = _mix(y, _filter_planes(routing, planes), proj_weight, None)
    else:
        out = _spectral_mix_eager(y, routing, planes, proj_weight)
    return out.permute(0, 2, 3, 1).to(out_dtype)


def pointwise_to_channels_first(x: Tensor, weight: Tensor) -> Tensor:
    """Linear over channels of (B, H, W, C) x, written channels-first as (B, M, H, W).

    A batched matmul with a transposed operand: no permute copy before the FFT or conv.
    """
    B, H, W, C = x.shape
    # bmm, not matmul: matmul would fold the batch and hand back a channels-last result.
    return torch.bmm(weight.expand(B, -1, -1), x.reshape(B, H * W, C).transpose(1, 2)).view(B, -1, H, W)


def pointwise(x: Tensor, weight: Tensor, bias: Optional[Tensor] = None) -> Tensor:
    """Linear over channels of (B, H, W, C) x, as a 1x1 convolution of its channels_last view
    (no copy): oneDNN runs it 5-35% faster than the GEMM of nn.Linear on CPU, forward and
    backward, at the shapes of these networks. Same weights (out, in) as nn.Linear."""
    return F.conv2d(x.permute(0, 3, 1, 2), weight[:, :, None, None], bias).permute(0, 2, 3, 1)


class ChannelMlp(Mlp):
    """timm's Mlp (same parameters) on (B, H, W, C) maps, its linear layers as `pointwise`."""

    def forward(self, x: Tensor) -> Tensor:
        x = self.drop1(self.act(pointwise(x, self.fc1.weight, self.fc1.bias)))
        return self.drop2(pointwise(self.norm(x), self.fc2.weight, self.fc2.bias))


class _StarReLUFunction(torch.autograd.Function):
    """s * relu(x)**2 + b saving only x for backward (autograd's formula keeps relu(x) and
    relu(x)**2, two more tensors of x's size: the largest activations of the network), and
    computing the output in one buffer."""

    @staticmethod
    def forward(ctx, x: Tensor, scale: Tensor, bias: Tensor) -> Tensor:
        ctx.save_for_backward(x, scale)
        y = F.relu(x)
        return y.mul_(y).mul_(scale).add_(bias)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, scale = ctx.saved_tensors
        grad_x = grad_scale = grad_bias = None
        relu_x = F.relu(x)
        if ctx.needs_input_grad[2]:
            grad_bias = grad.sum().view(1)
        grad_relu = relu_x.mul_(grad) if not ctx.needs_input_grad[1] else grad * relu_x  # grad * relu(x)
        if ctx.needs_input_grad[1]:
            grad_scale = torch.dot(grad_relu.flatten(), relu_x.flatten()).view(1)
        if ctx.needs_input_grad[0]:
            grad_x = grad_relu.mul_(2 * scale)
        return grad_x, grad_scale, grad_bias


@register_notrace_module  # FX leaf: branches on dtypes
class StarReLU(metaformer.StarReLU):
    """s * relu(x)**2 + b (timm's, same parameters and outputs), keeping only its input for
    backward and writing one buffer; with `inplace`, without autograd, it writes into its input."""

    def forward(self, x: Tensor) -> Tensor:
        if torch.jit.is_scripting() or x.dtype != self.scale.dtype:  # (autocast: timm's promotion)
            return self.scale * F.relu(x) ** 2 + self.bias
        if self.inplace and not torch.is_grad_enabled():
            x = x.relu_()
            return x.mul_(x).mul_(self.scale).add_(self.bias)
        return _StarReLUFunction.apply(x, self.scale, self.bias)


# ----------------------------------------------------------------------------------------------
# Token mixers. All take and return channels-last (B, H, W, C).

def _filter_shape(size: Tuple[int, int]) -> Tuple[int, int]:
    """rFFT2 shape of an (H, W) feature map."""
    return size[0], size[1] // 2 + 1


class DynamicFilter(nn.Module):
    """Dynamic filter: filters are a softmax-weighted mix of `num_filters` shared complex bases,
    with weights predicted per image and channel from the globally pooled input."""

    def __init__(
            self,
            dim: int,
            expansion_ratio: float = 2,
            reweight_expansion_ratio: float = .25,
            act_layer=StarReLU,
            num_filters: int = 4,
            size: Union[int, Tuple[int, int]] = 14,
    ):
        super().__init__()
        self.num_filters = num_filters
        self.med_channels = int(expansion_ratio * dim)
        self.pwconv1 = nn.Linear(dim, self.med_channels, bias=False)
        self.act1 = act_layer()
        self.reweight = Mlp(
            dim, int(reweight_expansion_ratio * dim), num_filters * self.med_channels,
            act_layer=StarReLU, bias=False,
        )
        self.complex_weights = nn.Parameter(
            torch.randn(*_filter_shape(to_2tuple(size)), num_filters, 2) * 0.02)
        self.pwconv2 = nn.Linear(self.med_channels, dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        B, H, W, _ = x.shape
        routing = self.reweight(x.mean(dim=(1, 2))).view(B, self.num_filters, -1).softmax(dim=1)
        y = self.act1(pointwise_to_channels_first(x, self.pwconv1.weight))
        return spectral_mix(y, routing, self.complex_weights, self.pwconv2.weight, x.dtype)


class GlobalFilter(nn.Module):
    """GFNet-style global filter: one learned complex filter per expanded channel."""

    def __init__(
            self,
            dim: int,
            expansion_ratio: float = 2,
            act_layer=StarReLU,
            size: Union[int, Tuple[int, int]] = 14,
    ):
        super().__init__()
        self.med_channels = int(expansion_ratio * dim)
        self.pwconv1 = nn.Linear(dim, self.med_channels, bias=False)
        self.act1 = act_layer()
        self.complex_weights = nn.Parameter(
            torch.randn(*_filter_shape(to_2tuple(size)), self.med_channels, 2) * 0.02)
        self.pwconv2 = nn.Linear(self.med_channels, dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        y = self.act1(pointwise_to_channels_first(x, self.pwconv1.weight))
        return spectral_mix(y, None, self.complex_weights, self.pwconv2.weight, x.dtype)


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


class AFNO(nn.Module):
    """Adaptive Fourier Neural Operator mixer (Guibas et al. 2022), the `_afno` ablation.

    A block-diagonal two-layer complex MLP over channels at every frequency, then soft
    shrinkage; weights w1, w2 (2, blocks, d, d) and biases b1, b2 (2, blocks, d) hold the real
    (index 0) and imaginary (index 1) parts.
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
    def _complex_block_linear(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        """x (..., blocks, d) complex times block weights given as (2, blocks, d, d) real/imag."""
        weight, bias = weight.to(x.real.dtype), bias.to(x.real.dtype)
        out = torch.einsum('...ni,nio->...no', x, torch.complex(weight[0], weight[1]))
        return out + torch.complex(bias[0], bias[1])

    @torch.jit.unused
    def _dft_matmul_forced(self) -> bool:
        return _transform_override == 'matmul'

    @torch.jit.unused
    def _mix_dft_matmul(self, y: Tensor) -> Tensor:
        """`forward`'s spectral part with the real DFT matrices (`spectral_transform('matmul')`,
        e.g. for ONNX export: MatMul nodes, no complex tensors): y (B, H, W, C) -> (B, H, W, C)."""
        B, H, W, C = y.shape
        if torch.compiler.is_compiling():  # traced (torch.export): from the sizes, by ops
            matrices = dft_matrices(H, W, y.dtype, y.device)
        else:
            matrices = _cached_dft_matrices(H, W, y.dtype, y.device)
        # (B, C, H * (W // 2 + 1) * 2) -> real and imaginary parts (B, frequencies, blocks, d)
        spectrum = _rdft2(y.permute(0, 3, 1, 2), matrices).view(B, C, -1, 2).transpose(1, 2)
        spectrum = spectrum.reshape(B, spectrum.shape[1], self.num_blocks, C // self.num_blocks, 2)
        real, imag = spectrum.unbind(-1)

        def block_linear(real: Tensor, imag: Tensor, weight: Tensor, bias: Tensor) -> Tuple[Tensor, Tensor]:
            weight, bias = weight.to(real.dtype), bias.to(real.dtype)
            rw = torch.einsum('...ni,nio->...no', real, weight[0])
            iw = torch.einsum('...ni,nio->...no', imag, weight[1])
            riw = torch.einsum('...ni,nio->...no', real, weight[1])
            irw = torch.einsum('...ni,nio->...no', imag, weight[0])
            return rw - iw + bias[0], riw + irw + bias[1]

        real, imag = block_linear(real, imag, self.w1, self.b1)
        real, imag = block_linear(F.relu(real), F.relu(imag), self.w2, self.b2)
        out = F.softshrink(torch.stack((real, imag), dim=-1), lambd=self.sparsity_threshold)
        out = out.reshape(B, -1, C, 2).transpose(1, 2).reshape(B, C, -1)
        return _irdft2(out, (H, W), matrices).permute(0, 2, 3, 1)

    def forward(self, x: Tensor) -> Tensor:
        B, H, W, _ = x.shape
        y = to_spectral_dtype(self.act1(self.pwconv1(x)))
        if not torch.jit.is_scripting() and self._dft_matmul_forced():
            return self.pwconv2((self._mix_dft_matmul(y) + y).to(x.dtype))
        spectrum = torch.fft.rfft2(y, dim=(1, 2), norm='ortho')
        spectrum = spectrum.reshape(B, H, -1, self.num_blocks, self.med_channels // self.num_blocks)
        hidden = self._complex_block_linear(spectrum, self.w1, self.b1)
        hidden = torch.complex(F.relu(hidden.real), F.relu(hidden.imag))
        out = torch.view_as_real(self._complex_block_linear(hidden, self.w2, self.b2))
        out = torch.view_as_complex(F.softshrink(out, lambd=self.sparsity_threshold))
        out = torch.fft.irfft2(out.reshape(B, H, -1, self.med_channels), s=(H, W), dim=(1, 2), norm='ortho')
        return self.pwconv2((out + y).to(x.dtype))


TOKEN_MIXERS = dict(
    dynamic_filter=DynamicFilter,
    global_filter=GlobalFilter,
    sepconv=SepConv,
    afno=AFNO,
)
ACTIVATIONS = dict(star_relu=StarReLU, gelu=nn.GELU, relu=nn.ReLU)


# ----------------------------------------------------------------------------------------------
# Network

def _layer_norm(dim: int, bias: bool = False) -> nn.LayerNorm:
    return nn.LayerNorm(dim, eps=1e-6, bias=bias)


class Downsampling(nn.Module):
    """Stem (image -> conv 7x7/4 -> norm) or stage transition (norm -> conv 3x3/2); NHWC out."""

    def __init__(self, in_chs: int, out_chs: int, stem: bool):
        super().__init__()
        self.pre_permute = not stem  # stage transitions take NHWC
        self.pre_norm = nn.Identity() if stem else _layer_norm(in_chs)
        if stem:
            self.conv = nn.Conv2d(in_chs, out_chs, kernel_size=7, stride=4, padding=2)
        else:
            self.conv = nn.Conv2d(in_chs, out_chs, kernel_size=3, stride=2, padding=1)
        self.post_norm = _layer_norm(out_chs) if stem else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        x = self.pre_norm(x)
        if self.pre_permute:
            # A channels_last view: the conv keeps that memory format, so the permute
            # back to NHWC below is contiguous again.
            x = x.permute(0, 3, 1, 2)
        return self.post_norm(self.conv(x).permute(0, 2, 3, 1))


class MetaFormerBlock(nn.Module):
    """x = r1(x) + mixer(norm1(x)); x = r2(x) + mlp(norm2(x)), with optional residual scales."""

    def __init__(
            self,
            dim: int,
            token_mixer: nn.Module,
            act_layer=StarReLU,
            mlp_ratio: float = 4,
            drop: float = 0.,
            drop_path: float = 0.,
            res_scale_init_value: Optional[float] = None,
    ):
        super().__init__()
        self.norm1 = _layer_norm(dim)
        self.token_mixer = token_mixer
        self.drop_path1 = DropPath(drop_path) if drop_path > 0. else nn.Identity()
        self.res_scale1 = Scale(dim, res_scale_init_value, use_nchw=False) if res_scale_init_value else nn.Identity()
        self.norm2 = _layer_norm(dim)
        self.mlp = ChannelMlp(dim, int(mlp_ratio * dim), act_layer=act_layer, bias=False, drop=drop)
        self.drop_path2 = DropPath(drop_path) if drop_path > 0. else nn.Identity()
        self.res_scale2 = Scale(dim, res_scale_init_value, use_nchw=False) if res_scale_init_value else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        x = self.res_scale1(x) + self.drop_path1(self.token_mixer(self.norm1(x)))
        x = self.res_scale2(x) + self.drop_path2(self.mlp(self.norm2(x)))
        return x


# The stem (conv 7x7, stride 4, padding 2) needs 3 pixels for a 1x1 output; every later map is >= 1x1.
MIN_IMG_SIZE = 3


def _stage_size(img_size: Tuple[int, int], stride: int) -> Tuple[int, int]:
    """The feature-map size the filters of a stage are built for: img_size // stride (the authors'
    choice), at least 1x1 (below 32 px the last stages' maps are 1 pixel, not 0)."""
    return max(1, img_size[0] // stride), max(1, img_size[1] // stride)


def _per_stage(value, num_stages: int) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value] * num_stages


class DFFormerTrunk(nn.Module):
    """Stem and four stages of MetaFormer blocks with FFT-based token mixers: the trunk shared by
    the classifier (`DFFormer`) and the dense-prediction backbone (`DFFormerDense`).

    Args:
        depths, dims: blocks and channels of the four stages.
        token_mixers: per stage (or one for all), a key of TOKEN_MIXERS.
        mixer_kwargs: overrides of the mixer defaults (e.g. num_filters, reweight_expansion_ratio).
        act_layer: 'star_relu', 'gelu' or 'relu': first activation of the mixer and of the MLP.
        img_size: input size the frequency filters are built for (at least 3 px, as any input);
            other sizes resize them.
        res_scale_init_values: per stage, init of the residual scales (None: no scale).
        proj_drop_rate: dropout in the channel MLPs; drop_path_rate: stochastic depth (last block).
    """

    def __init__(
            self,
            in_chans: int = 3,
            depths: Sequence[int] = (3, 3, 9, 3),
            dims: Sequence[int] = (64, 128, 320, 512),
            token_mixers: Union[str, Sequence[str]] = 'dynamic_filter',
            mixer_kwargs: Optional[Dict] = None,
            act_layer: str = 'star_relu',
            img_size: Union[int, Tuple[int, int]] = 224,
            mlp_ratio: float = 4,
            res_scale_init_values: Sequence[Optional[float]] = (None, None, 1.0, 1.0),
            proj_drop_rate: float = 0.,
            drop_path_rate: float = 0.,
    ):
        super().__init__()
        num_stages = len(depths)
        token_mixers = _per_stage(token_mixers, num_stages)
        unknown = sorted(set(token_mixers) - set(TOKEN_MIXERS))
        if unknown:
            raise ValueError(f'unknown token mixer(s) {unknown}; choose from {sorted(TOKEN_MIXERS)}')
        if act_layer not in ACTIVATIONS:
            raise ValueError(f'unknown act_layer {act_layer!r}; choose from {sorted(ACTIVATIONS)}')
        act = ACTIVATIONS[act_layer]
        if act is StarReLU:  # the mixers' and MLPs' activations take fresh buffers: reuse them
            act = partial(StarReLU, inplace=True)
        img_size = to_2tuple(img_size)
        if min(img_size) < MIN_IMG_SIZE:
            raise ValueError(f'img_size must be at least {MIN_IMG_SIZE} pixels (got {img_size})')

        self.dims = list(dims)
        self.img_size = img_size
        self.num_features = self.head_hidden_size = dims[-1]
        self.grad_checkpointing = False

        self.downsample_layers = nn.ModuleList(
            [Downsampling(([in_chans] + list(dims))[i], dims[i], stem=i == 0) for i in range(num_stages)])
        dp_rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        res_scales = _per_stage(res_scale_init_values, num_stages)
        self.stages = nn.ModuleList()
        self.feature_info = []
        cur = 0
        for i in range(num_stages):
            stride = 2 ** (i + 2)
            mixer = partial(
                TOKEN_MIXERS[token_mixers[i]], act_layer=act, **(mixer_kwargs or {}),
                **({'size': _stage_size(img_size, stride)}
                   if token_mixers[i] in ('dynamic_filter', 'global_filter') else {}),
            )
            self.stages.append(nn.Sequential(*[
                MetaFormerBlock(
                    dims[i], mixer(dims[i]), act_layer=act, mlp_ratio=mlp_ratio, drop=proj_drop_rate,
                    drop_path=dp_rates[cur + j], res_scale_init_value=res_scales[i])
                for j in range(depths[i])
            ]))
            cur += depths[i]
            self.feature_info.append(dict(num_chs=dims[i], reduction=stride, module=f'stages.{i}'))
        self.apply(_init_weights)

    @torch.jit.ignore
    def no_weight_decay(self):
        # The authors' recipe decays every tensor of 2+ dims (the filter bases included) and no
        # 1-dim tensor; timm's param_groups_weight_decay skips 1-dim tensors by itself.
        return set()

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False):
        return dict(
            stem=r'^downsample_layers\.0',
            blocks=r'^stages\.(\d+)' if coarse else [
                (r'^downsample_layers\.(\d+)', (0,)),  # with the stage it feeds
                (r'^stages\.(\d+)\.(\d+)', None),
                (r'^norm', (99999,)),
            ],
        )

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True):
        self.grad_checkpointing = enable

    def _run_stages(self, x: Tensor, last: int = -1) -> List[Tensor]:
        """Outputs (NHWC) of stages 0..last (all when last < 0)."""
        outs = []
        for i, (down, stage) in enumerate(zip(self.downsample_layers, self.stages)):
            if last < 0 or i <= last:  # (TorchScript unrolls this loop: no `break`)
                x = down(x)
                if self.grad_checkpointing and not torch.jit.is_scripting():
                    x = checkpoint_seq(stage, x)
                else:
                    x = stage(x)
                outs.append(x)
        return outs


def _init_weights(m: nn.Module):
    if isinstance(m, (nn.Conv2d, nn.Linear)):
        trunc_normal_(m.weight, std=.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def _check_global_pool(global_pool: str) -> str:
    if global_pool not in ('avg', ''):
        raise ValueError(f"global_pool must be 'avg' or '' (got {global_pool!r})")
    return global_pool


class DFFormer(DFFormerTrunk):
    """DFFormer / CDFFormer / GFFormer classifier: the trunk, global average pooling, a
    LayerNorm and an MLP head (timm's MetaFormer head).

    Args:
        num_classes: classes of the head (0: no head, `forward` returns pooled features).
        global_pool: 'avg', or '' to classify every position.
        drop_rate: dropout in the MLP head.
        **kwargs: the trunk's arguments (see DFFormerTrunk); an unknown one is an error.
    """

    def __init__(self, num_classes: int = 1000, global_pool: str = 'avg', drop_rate: float = 0., **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.global_pool = _check_global_pool(global_pool)
        self.drop_rate = drop_rate
        self.norm = nn.LayerNorm(self.num_features, eps=1e-6)
        self.head = self._make_head(num_classes)

    def _make_head(self, num_classes: int) -> nn.Module:
        if num_classes <= 0:
            return nn.Identity()
        head = MlpHead(self.num_features, num_classes, act_layer=SquaredReLU, norm_layer=nn.LayerNorm,
                       drop_rate=self.drop_rate)
        head.apply(_init_weights)
        return head

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head.fc2 if isinstance(self.head, MlpHead) else self.head

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None):
        if global_pool is not None:
            self.global_pool = _check_global_pool(global_pool)
        self.num_classes = num_classes
        self.head = self._make_head(num_classes).to(self.norm.weight.device)

    def forward_intermediates(
            self,
            x: Tensor,
            indices: Optional[Union[int, List[int]]] = None,
            norm: bool = False,
            stop_early: bool = False,
            output_fmt: str = 'NCHW',
            intermediates_only: bool = False,
    ) -> Union[List[Tensor], Tuple[Tensor, List[Tensor]]]:
        """Stage outputs (NCHW) at `indices` (last n if int, all if None) and, unless
        intermediates_only, the final features as forward_features returns them."""
        assert output_fmt in ('NCHW', 'NHWC'), 'output_fmt must be NCHW or NHWC'
        take_indices, max_index = feature_take_indices(len(self.stages), indices)
        outs = self._run_stages(x, max_index if stop_early or intermediates_only else -1)
        intermediates = [
            outs[i].permute(0, 3, 1, 2) if output_fmt == 'NCHW' else outs[i] for i in take_indices]
        if intermediates_only:
            return intermediates
        return outs[-1].permute(0, 3, 1, 2), intermediates

    def prune_intermediate_layers(
            self,
            indices: Union[int, List[int]] = 1,
            prune_norm: bool = False,
            prune_head: bool = True,
    ):
        take_indices, max_index = feature_take_indices(len(self.stages), indices)
        self.stages = self.stages[:max_index + 1]
        self.downsample_layers = self.downsample_layers[:max_index + 1]
        if prune_head or max_index < len(self.dims) - 1:
            self.reset_classifier(0, '')
        return take_indices

    def forward_features(self, x: Tensor) -> Tensor:
        """Unpooled final features, NCHW."""
        return self._run_stages(x)[-1].permute(0, 3, 1, 2)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        if self.global_pool == 'avg':
            x = self.norm(x.mean(dim=(2, 3)))
            return x if pre_logits else self.head(x)
        # No pooling: normalise and classify every position.
        x = self.norm(x.permute(0, 2, 3, 1))
        return (x if pre_logits else self.head(x)).permute(0, 3, 1, 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


class DFFormerDense(DFFormerTrunk):
    """The trunk as a backbone for dense prediction.

    Returns the NCHW outputs of the stages in `out_indices`, each normalised by `norm{i}`
    (LayerNorm with bias). With stage0_output_norm=False, norm0 is an identity (RetinaNet
    starts its FPN at stage 1, so that norm would get no gradient).
    """

    def __init__(self, out_indices: Sequence[int] = (0, 1, 2, 3), stage0_output_norm: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.out_indices = tuple(out_indices)
        for i, dim in enumerate(self.dims):
            keep = i in self.out_indices and (i > 0 or stage0_output_norm)
            self.add_module(f'norm{i}', nn.LayerNorm(dim, eps=1e-6) if keep else nn.Identity())

    def forward(self, x: Tensor) -> List[Tensor]:
        outs = self._run_stages(x, max(self.out_indices))
        norms = [self.norm0, self.norm1, self.norm2, self.norm3]
        return [norms[i](outs[i]).permute(0, 3, 1, 2) for i in self.out_indices]


# ----------------------------------------------------------------------------------------------
# Checkpoints

def checkpoint_filter_fn(state_dict: Dict[str, Tensor], model: nn.Module) -> Dict[str, Tensor]:
    """Adapt an authors' or our own checkpoint to `model`: the one adaptation every load goes
    through (timm's `pretrained=True`, `load_checkpoint`, the dense backbone's init_cfg).

    Unwraps a training checkpoint's 'state_dict' and DDP / compile prefixes and resizes the filter
    bases to the model's filter size (its `img_size`). Into a dense backbone, a classifier
    checkpoint drops its head and final norm, and the stage output norms it lacks keep their
    init. timm's load_pretrained adapts the stem to `in_chans` and drops the classifier when the
    class count differs.
    """
    for key in ('state_dict', 'model'):
        if isinstance(state_dict.get(key), dict):
            state_dict = state_dict[key]
            break
    state_dict = clean_state_dict(state_dict)
    own = model.state_dict()
    out = {}
    for k, v in state_dict.items():
        if k not in own and k.startswith(('head.', 'norm.')) and isinstance(model, DFFormerDense):
            continue
        if k in own and k.endswith('complex_weights') and v.ndim == 4 and v.shape != own[k].shape:
            v = resize_filter_bases(v, tuple(own[k].shape[:2]))
        out[k] = v.contiguous()
    if isinstance(model, DFFormerDense):
        out.update({k: v for k, v in own.items() if k not in out and re.match(r'norm\d\.', k)})
    return out


# ----------------------------------------------------------------------------------------------
# Model zoo

_SIZES = {
    's18': dict(depths=(3, 3, 9, 3), dims=(64, 128, 320, 512)),
    's36': dict(depths=(3, 12, 18, 3), dims=(64, 128, 320, 512)),
    'm36': dict(depths=(3, 12, 18, 3), dims=(96, 192, 384, 576)),
    'b36': dict(depths=(3, 12, 18, 3), dims=(128, 256, 512, 768)),
}
_CONV_THEN_DYNAMIC = ('sepconv', 'sepconv', 'dynamic_filter', 'dynamic_filter')

# name -> (size, extra constructor args): the whole zoo in one table.
MODEL_ARCHS = {
    **{f'dfformer_{s}': (s, dict(token_mixers='dynamic_filter')) for s in _SIZES},
    **{f'cdfformer_{s}': (s, dict(token_mixers=_CONV_THEN_DYNAMIC)) for s in _SIZES},
    'gfformer_s18': ('s18', dict(token_mixers='global_filter')),
    'dfformer_s18_k2': ('s18', dict(token_mixers='dynamic_filter', mixer_kwargs=dict(num_filters=2))),
    'dfformer_s18_d8': ('s18', dict(token_mixers='dynamic_filter', mixer_kwargs=dict(reweight_expansion_ratio=.125))),
    'dfformer_s18_gelu': ('s18', dict(token_mixers='dynamic_filter', act_layer='gelu')),
    'dfformer_s18_relu': ('s18', dict(token_mixers='dynamic_filter', act_layer='relu')),
    'dfformer_s18_afno': ('s18', dict(token_mixers='afno')),
}

RELEASE_URL = 'https://github.com/okojoalg/dfformer/releases/download/weights/{}.pth'
RELEASED = [f'{family}_{s}' for family in ('dfformer', 'cdfformer') for s in _SIZES]


def arch_args(name: str) -> Dict:
    """Constructor arguments of a zoo model (used by the dense backbones too)."""
    if name not in MODEL_ARCHS:
        raise ValueError(f'unknown DFFormer model {name!r}; choose from {sorted(MODEL_ARCHS)}')
    size, extra = MODEL_ARCHS[name]
    return dict(**_SIZES[size], **extra)


def _cfg(url: str = '', **kwargs) -> Dict:
    return {
        'url': url, 'num_classes': 1000, 'input_size': (3, 224, 224), 'pool_size': (7, 7),
        'crop_pct': 1.0, 'interpolation': 'bicubic', 'mean': IMAGENET_DEFAULT_MEAN, 'std': IMAGENET_DEFAULT_STD,
        'first_conv': 'downsample_layers.0.conv', 'classifier': 'head.fc2',
        'license': 'mit', 'paper_ids': 'arXiv:2303.03932',
        **kwargs,
    }


# Released ImageNet-1k weights are tagged `.in1k` (the untagged name resolves to them); the
# ablations have no released weights.
default_cfgs = generate_default_cfgs({
    **{f'{name}.in1k': _cfg(RELEASE_URL.format(name)) for name in RELEASED},
    **{name: _cfg() for name in MODEL_ARCHS if name not in RELEASED},
})


def _create_dfformer(variant: str, pretrained: bool = False, **kwargs) -> DFFormer:
    out_indices = kwargs.pop('out_indices', (0, 1, 2, 3))
    return build_model_with_cfg(
        DFFormer, variant, pretrained,
        pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg=dict(out_indices=out_indices, feature_cls='getter'),
        **{**arch_args(variant), **kwargs},
    )


@register_model
def dfformer_s18(pretrained: bool = False, **kwargs) -> DFFormer:
    return _create_dfformer('dfformer_s18', pretrained=pretrained, **kwargs)


@register_model
def dfformer_s36(pretrained: bool = False, **kwargs) -> DFFormer:
    return _create_dfformer('dfformer_s36', pretrained=pretrained, **kwargs)


@register_model
def dfformer_m36(pretrained: bool = False, **kwargs) -> DFFormer:
    return _create_dfformer('dfformer_m36', pretrained=pretrained, **kwargs)


@register_model
def dfformer_b36(pretrained: bool = False, **kwargs) -> DFFormer:
    return _create_dfformer('dfformer_b36', pretrained=pretrained, **kwargs)


@register_model
def cdfformer_s18(pretrained: bool = False, **kwargs) -> DFFormer:
    return _create_dfformer('cdfformer_s18', pretrained=pretrained, **kwargs)


@register_model
def cdfformer_s36(pretrained: bool = False, **kwargs) -> DFFormer:
    return _create_dfformer('cdfformer_s36', pretrained=pretrained, **kwargs)


@register_model
def cdfformer_m36(pretrained: bool = False, **kwargs) -> DFFormer:
    return _create_dfformer('cdfformer_m36', pretrained=pretrained, **kwargs)


@register_model
def cdfformer_b36(pretrained: bool = False, **kwargs) -> DFFormer:
    return _create_dfformer('cdfformer_b36', pretrained=pretrained, **kwargs)


@register_model
def gfformer_s18(pretrained: bool = False, **kwargs) -> DFFormer:
    return _create_dfformer('gfformer_s18', pretrained=pretrained, **kwargs)


@register_model
def dfformer_s18_k2(pretrained: bool = False, **kwargs) -> DFFormer:
    return _create_dfformer('dfformer_s18_k2', pretrained=pretrained, **kwargs)


@register_model
def dfformer_s18_d8(pretrained: bool = False, **kwargs) -> DFFormer:
    return _create_dfformer('dfformer_s18_d8', pretrained=pretrained, **kwargs)


@register_model
def dfformer_s18_gelu(pretrained: bool = False, **kwargs) -> DFFormer:
    return _create_dfformer('dfformer_s18_gelu', pretrained=pretrained, **kwargs)


@register_model
def dfformer_s18_relu(pretrained: bool = False, **kwargs) -> DFFormer:
    return _create_dfformer('dfformer_s18_relu', pretrained=pretrained, **kwargs)


@register_model
def dfformer_s18_afno(pretrained: bool = False, **kwargs) -> DFFormer:
    return _create_dfformer('dfformer_s18_afno', pretrained=pretrained, **kwargs)

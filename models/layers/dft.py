"""The orthonormal 2D real DFT of feature maps, as one of three interchangeable transforms.

`FFT2` runs torch.fft; `MatmulDFT2` multiplies by real DFT matrices (one GEMM: faster on small
maps, and MatMul nodes only when exported to ONNX). Both map (B, C, H, W) real maps to spectra
stored as real (B, C, K2) tensors, K2 = H * (W // 2 + 1) * 2 in `view_as_real(rfft2(.))` order,
and both have the adjoints that a hand-written backward needs. `dft_for(size, ...)` is the one
place that chooses between them. `ChannelsLastDFT2` (half-precision inference, see
`channels_last_dft_for`) transforms channels-last (B, H, W, C) maps by the 1D DFTs along W, then H,
each a GEMM in the maps' dtype, to spectra in (B, H, 2, W // 2 + 1, C) order (real and imaginary
planes per row).
"""
import math
from contextlib import contextmanager
from typing import Dict, Optional, Tuple, Union

import torch
from timm.layers import is_exportable
from torch import Tensor

__all__ = [
    'CHANNELS_LAST_DFT_MAX_SIDE', 'ChannelsLastDFT2', 'DFT_MATMUL_MAX_PIXELS', 'DFT_MATMUL_MAX_PIXELS_HALF', 'FFT2',
    'MatmulDFT2', 'channels_last_dft_for', 'dft_for', 'dft_matrices', 'separable_dft_matrices', 'spectral_transform',
]

# Maps of at most this many pixels are transformed by matrix multiplication: the real DFT
# matrices are small and one GEMM beats the FFT's passes. In float32 up to 7x7 (8x8 at 256 px): at
# 14x14 the FFT is faster again. In half precision up to 14x14: the GEMM runs on the half-precision
# units (AMX, tensor cores) and spares the FFT's casts to float32 and back (measured on CPU with
# both; docs/performance.md).
DFT_MATMUL_MAX_PIXELS = 64
DFT_MATMUL_MAX_PIXELS_HALF = 196

# Half-precision inference transforms maps up to this side by the 1D DFT matrices on channels-last
# data (every product a GEMM in the half dtype, no layout copy; the GEMMs' cost per pixel grows with
# the side, the FFT's with its log).
CHANNELS_LAST_DFT_MAX_SIDE = 64

_forced_kind: Optional[str] = None
_MATRIX_CACHE: Dict[Tuple[str, int, int, torch.dtype, torch.device], Tuple[Tensor, ...]] = {}


@contextmanager
def spectral_transform(kind: str):
    """Within the block, every spectral mixer transforms its maps by `kind`: 'matmul' (real DFT
    matrices: MatMul nodes, e.g. for ONNX export) or 'fft' (e.g. to count the FFT formulation's
    MACs), instead of choosing by map size. timm's `set_layer_config(exportable=True)` (what
    timm's onnx_export.py sets) selects 'matmul' too."""
    global _forced_kind
    if kind not in ('matmul', 'fft'):
        raise ValueError(f"spectral_transform: kind must be 'matmul' or 'fft' (got {kind!r})")
    before, _forced_kind = _forced_kind, kind
    try:
        yield
    finally:
        _forced_kind = before


def column_weights(width: int, dtype: torch.dtype, device: Optional[torch.device]) -> Tensor:
    """Weights of the rFFT columns in the inverse: 2 for those standing for a conjugate pair,
    1 for the zero (and, for even widths, the Nyquist) frequency."""
    # (no branch on the width's parity: traced with a symbolic width, e.g. for ONNX, one graph
    # serves odd and even widths)
    k = torch.arange(width // 2 + 1, device=device)
    return torch.where((k == 0) | (2 * k == width), 1., 2.).to(dtype)


def dft_matrices(height: int, width: int, dtype: torch.dtype = torch.float64,
                 device: Optional[torch.device] = None) -> Tuple[Tensor, Tensor]:
    """Real matrices of the orthonormal 2D real DFT of an (height, width) map, both (H * W, K2):

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
    inverse_t = forward * column_weights(width, dtype, device)[:, None]
    return forward.reshape(height * width, -1), inverse_t.reshape(height * width, -1)


def separable_dft_matrices(height: int, width: int, dtype: torch.dtype = torch.float64,
                           device: Optional[torch.device] = None) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """Real matrices of the orthonormal 1D DFTs that compose the 2D real DFT, for `ChannelsLastDFT2`:
    `along_w` (2K, W), K = W // 2 + 1, the rDFT of a row with real parts in rows :K and imaginary
    parts in rows K:; `along_w_inverse` (W, 2K), its inverse (with the weights of `column_weights`);
    `along_h` (2H, 2H), the complex DFT along H of columns given as (h, real / imaginary) rows, with
    rows in the same (kh, real / imaginary) order, and `along_h_inverse`, its transpose (orthonormal)."""
    k = torch.arange(width // 2 + 1, device=device)
    angle = (2 * math.pi / width) * (k[:, None] * torch.arange(width, device=device)[None, :] % width).to(dtype)
    along_w = torch.cat((angle.cos(), -angle.sin())) * width ** -0.5  # (2K, W)
    along_w_inverse = along_w.t() * column_weights(width, dtype, device).repeat(2)
    h = torch.arange(height, device=device)
    angle = (2 * math.pi / height) * (h[:, None] * h[None, :] % height).to(dtype)  # (kh, h)
    cos, sin = angle.cos() * height ** -0.5, angle.sin() * height ** -0.5
    # (a + ib)(cos - i sin) = (a cos + b sin) + i(b cos - a sin)
    along_h = torch.stack((torch.stack((cos, sin), -1), torch.stack((-sin, cos), -1)), 1)  # (kh, 2, h, 2)
    along_h = along_h.reshape(2 * height, 2 * height)
    return along_w, along_w_inverse.contiguous(), along_h, along_h.t().contiguous()


class FFT2:
    """The transform by torch.fft (rfft2 / irfft2 over the two innermost dims, orthonormal), in
    `dtype`, float32 or float64: inputs of other dtypes are cast (CPU FFTs have no half
    precision, cuFFT's only for power-of-2 sizes, and half-precision FFTs lose accuracy as the
    map grows)."""

    def __init__(self, dtype: torch.dtype = torch.float32):
        self.dtype = dtype

    def forward(self, y: Tensor) -> Tensor:
        """(B, C, H, W) -> spectrum as real (B, C, K2)."""
        return torch.view_as_real(torch.fft.rfft2(y.to(self.dtype), norm='ortho')).flatten(2)

    def inverse(self, spectrum: Tensor, size: Tuple[int, int]) -> Tensor:
        """Spectrum as real (B, C, K2) -> (B, C, H, W)."""
        B, C = spectrum.shape[:2]
        spectrum = torch.view_as_complex(spectrum.to(self.dtype).view(B, C, size[0], size[1] // 2 + 1, 2))
        return torch.fft.irfft2(spectrum, s=size, norm='ortho')

    def forward_adjoint(self, grad: Tensor, size: Tuple[int, int]) -> Tensor:
        """Adjoint of `forward`: (B, C, K2) -> (B, C, H, W); may overwrite `grad`."""
        B, C = grad.shape[:2]
        grad = torch.view_as_complex(grad.to(self.dtype).view(B, C, size[0], size[1] // 2 + 1, 2))
        grad = grad.div_(column_weights(size[1], self.dtype, grad.device))
        return torch.fft.irfft2(grad, s=size, norm='ortho')

    def inverse_adjoint(self, grad: Tensor) -> Tensor:
        """Adjoint of `inverse`: (B, C, H, W) -> (B, C, K2)."""
        spectrum = torch.fft.rfft2(grad.to(self.dtype), norm='ortho')
        spectrum = spectrum.mul_(column_weights(grad.shape[-1], self.dtype, grad.device))
        return torch.view_as_real(spectrum).flatten(2)


class MatmulDFT2:
    """The transform as products with the real matrices of `dft_matrices` (forward, inverse_t), in
    their dtype: in bfloat16 / float16 a GEMM with float32 accumulation, like a linear layer
    under autocast."""

    def __init__(self, forward_matrix: Tensor, inverse_t: Tensor):
        self.forward_matrix, self.inverse_t = forward_matrix, inverse_t
        self.dtype = forward_matrix.dtype

    def forward(self, y: Tensor) -> Tensor:
        return torch.matmul(y.to(self.dtype).flatten(2), self.forward_matrix)

    def inverse(self, spectrum: Tensor, size: Tuple[int, int]) -> Tensor:
        return torch.matmul(spectrum.to(self.dtype), self.inverse_t.t()).unflatten(2, size)

    def forward_adjoint(self, grad: Tensor, size: Tuple[int, int]) -> Tensor:
        return torch.matmul(grad.to(self.dtype), self.forward_matrix.t()).unflatten(2, size)

    def inverse_adjoint(self, grad: Tensor) -> Tensor:
        return torch.matmul(grad.to(self.dtype).flatten(2), self.inverse_t)


class ChannelsLastDFT2:
    """The transform of channels-last maps as products with the matrices of `separable_dft_matrices`,
    in their dtype (half precision: GEMMs with float32 accumulation). No adjoints: it serves
    inference only (training keeps the Function of spectral.py)."""

    def __init__(self, along_w: Tensor, along_w_inverse: Tensor, along_h: Tensor, along_h_inverse: Tensor):
        self.along_w, self.along_w_inverse = along_w, along_w_inverse
        self.along_h, self.along_h_inverse = along_h, along_h_inverse
        self.dtype = along_w.dtype

    def forward(self, y: Tensor) -> Tensor:
        """(B, H, W, C) -> spectrum (B, H, 2, K, C)."""
        B, H, W, C = y.shape
        rows = torch.matmul(self.along_w, y.reshape(B * H, W, C))  # (B * H, 2K, C): per row [real; imag]
        return torch.matmul(self.along_h, rows.view(B, 2 * H, -1)).view(B, H, 2, -1, C)

    def inverse(self, spectrum: Tensor, size: Tuple[int, int]) -> Tensor:
        """Spectrum (B, H, 2, K, C) -> (B, H, W, C)."""
        B, H, _, K, C = spectrum.shape
        rows = torch.matmul(self.along_h_inverse, spectrum.reshape(B, 2 * H, K * C))
        return torch.matmul(self.along_w_inverse, rows.view(B * H, 2 * K, C)).view(B, H, size[1], C)


def _cached_matrices(kind: str, size: Tuple[int, int], dtype: torch.dtype, device: torch.device,
                     make) -> Tuple[Tensor, ...]:
    key = (kind, size[0], size[1], dtype, device)
    if key not in _MATRIX_CACHE:
        # Built in float64 on the CPU, then cast: exact to the last bit of the dtype. Never as
        # inference tensors (a first call under inference_mode): autograd may save them later.
        with torch.inference_mode(False):
            _MATRIX_CACHE[key] = tuple(m.to(device, dtype) for m in make(*size))
    return _MATRIX_CACHE[key]


@torch.jit.unused
def dft_for(size: Tuple[int, int], dtype: torch.dtype, device: torch.device) -> Union[FFT2, MatmulDFT2]:
    """The transform for (H, W) maps of `dtype`: forced by `spectral_transform` or timm's
    exportable config, else by map size (DFT_MATMUL_MAX_PIXELS). DFT matrices compute in `dtype`
    (half precision included: its error on small maps is that of a linear layer), the FFT in
    float64 for float64 maps, else float32."""
    kind = _forced_kind or ('matmul' if is_exportable() else None)
    if kind is None:
        half = dtype in (torch.bfloat16, torch.float16)
        max_pixels = DFT_MATMUL_MAX_PIXELS_HALF if half else DFT_MATMUL_MAX_PIXELS
        kind = 'matmul' if size[0] * size[1] <= max_pixels else 'fft'
    if kind == 'fft':
        return FFT2(torch.float64 if dtype == torch.float64 else torch.float32)
    if torch.compiler.is_compiling():  # traced (torch.compile, torch.export): built from the sizes, by ops
        # (phases in at least float32: in half precision they would be off by 1e-2)
        matrices = dft_matrices(size[0], size[1], torch.promote_types(dtype, torch.float32), device)
        return MatmulDFT2(*(m.to(dtype) for m in matrices))
    return MatmulDFT2(*_cached_matrices('matmul', size, dtype, device, dft_matrices))


@torch.jit.unused
def channels_last_dft_for(size: Tuple[int, int], dtype: torch.dtype, device: torch.device,
                          ) -> Optional[ChannelsLastDFT2]:
    """The channels-last transform for half-precision (H, W) maps in eager inference up to
    CHANNELS_LAST_DFT_MAX_SIDE, else None (then `dft_for` chooses; also when a transform is forced,
    the model is exportable or traced). Measured against the FFT and 2D DFT matrices in
    docs/performance.md; its error is within the bound of tests/test_precision.py."""
    if (dtype not in (torch.bfloat16, torch.float16) or max(size) > CHANNELS_LAST_DFT_MAX_SIDE
            or _forced_kind or is_exportable() or torch.compiler.is_compiling()):
        return None
    return ChannelsLastDFT2(*_cached_matrices('channels_last', size, dtype, device, separable_dft_matrices))

"""The orthonormal 2D real DFT of feature maps, as one of two interchangeable transforms.

`FFT2` runs torch.fft; `MatmulDFT2` multiplies by real DFT matrices (one GEMM: faster on small
maps, and MatMul nodes only when exported to ONNX). Both map (B, C, H, W) real maps to spectra
stored as real (B, C, K2) tensors, K2 = H * (W // 2 + 1) * 2 in `view_as_real(rfft2(.))` order,
and both have the adjoints that a hand-written backward needs. `dft_for(size, ...)` is the one
place that chooses between them.
"""
import math
from contextlib import contextmanager
from typing import Dict, Optional, Tuple, Union

import torch
from timm.layers import is_exportable
from torch import Tensor

__all__ = [
    'DFT_MATMUL_MAX_PIXELS', 'DFT_MATMUL_MAX_PIXELS_HALF', 'FFT2', 'MatmulDFT2', 'dft_for', 'dft_matrices',
    'spectral_transform',
]

# Maps of at most this many pixels are transformed by matrix multiplication: the real DFT
# matrices are small and one GEMM beats the FFT's passes. In float32 up to 7x7 (8x8 at 256 px): at
# 14x14 the FFT is faster again. In half precision up to 14x14: the GEMM runs on the half-precision
# units (AMX, tensor cores) and spares the FFT's casts to float32 and back (measured on CPU with
# both; docs/performance.md).
DFT_MATMUL_MAX_PIXELS = 64
DFT_MATMUL_MAX_PIXELS_HALF = 196

_forced_kind: Optional[str] = None
_MATRIX_CACHE: Dict[Tuple[int, int, torch.dtype, torch.device], Tuple[Tensor, Tensor]] = {}


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
    key = (size[0], size[1], dtype, device)
    if key not in _MATRIX_CACHE:
        # Built in float64 on the CPU, then cast: exact to the last bit of the dtype. Never as
        # inference tensors (a first call under inference_mode): autograd may save them later.
        with torch.inference_mode(False):
            _MATRIX_CACHE[key] = tuple(m.to(device, dtype) for m in dft_matrices(*size))
    return MatmulDFT2(*_MATRIX_CACHE[key])

"""The orthonormal 2D real DFT of feature maps, as one of three interchangeable transforms.

`FFT2` runs torch.fft; `MatmulDFT2` multiplies by the real matrices of the 2D DFT (one GEMM:
faster on small maps, and MatMul nodes only when exported to ONNX); `SeparableDFT2` multiplies
by the matrices of the 1D DFTs along H, then W (two GEMMs: half-precision maps up to 64x64,
where the GEMM units beat a float32 FFT and its casts). All map (B, C, H, W) real maps to
spectra stored as real (B, C, K2) tensors, K2 = H * (W // 2 + 1) * 2 in `view_as_real(rfft2(.))`
order, and all have the adjoints that a hand-written backward needs. `dft_for(size, ...)` is the
one place that chooses between them.
"""
import math
from contextlib import contextmanager
from typing import Dict, Optional, Tuple, Union

import torch
from timm.layers import is_exportable
from torch import Tensor

__all__ = [
    'DFT_MATMUL_MAX_PIXELS', 'DFT_MATMUL_MAX_PIXELS_HALF', 'DFT_SEPARABLE_MAX_SIDE_HALF', 'FFT2', 'MatmulDFT2',
    'SeparableDFT2', 'dft_for', 'dft_matrices', 'separable_dft_matrices', 'spectral_transform',
]

# Maps of at most this many pixels are transformed by matrix multiplication: the real DFT
# matrices are small and one GEMM beats the FFT's passes. In float32 up to 7x7 (8x8 at 256 px): at
# 14x14 the FFT is faster again. In half precision up to 14x14: the GEMM runs on the half-precision
# units (AMX, tensor cores) and spares the FFT's casts to float32 and back (measured on CPU with
# both; docs/performance.md).
DFT_MATMUL_MAX_PIXELS = 64
DFT_MATMUL_MAX_PIXELS_HALF = 196
# Larger half-precision maps up to this side go through the 1D DFT matrices (2 * H + W // 2 + 1
# MACs per pixel and transform: at 56x56 a third of the time of the FFT with its casts).
DFT_SEPARABLE_MAX_SIDE_HALF = 64

_forced_kind: Optional[str] = None
_KINDS = ('matmul', 'separable', 'fft')
_MATRIX_CACHE: Dict[Tuple[str, int, int, torch.dtype, torch.device], Tuple[Tensor, ...]] = {}


@contextmanager
def spectral_transform(kind: str):
    """Within the block, every spectral mixer transforms its maps by `kind`: 'matmul' (real 2D DFT
    matrices: MatMul nodes, e.g. for ONNX export), 'separable' (1D DFT matrices) or 'fft' (e.g.
    to count the FFT formulation's MACs), instead of choosing by map size and dtype. timm's
    `set_layer_config(exportable=True)` (what timm's onnx_export.py sets) selects 'matmul' too."""
    global _forced_kind
    if kind not in _KINDS:
        raise ValueError(f"spectral_transform: kind must be one of {', '.join(_KINDS)} (got {kind!r})")
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
                           device: Optional[torch.device] = None) -> Tuple[Tensor, Tensor, Tensor]:
    """Real matrices of the orthonormal 1D DFTs that compose the 2D real DFT of an (height, width)
    map: `rows` (2H, H), the complex DFT along H with real and imaginary parts in alternate rows;
    `columns` (2W, 2 * (W // 2 + 1)), the rDFT along W of a complex row given as [real, imag]
    and returned as interleaved (real, imag) pairs; `columns_inverse` (2 * (W // 2 + 1), 2W), its
    inverse with the weights of `column_weights`. For x (H, W):

        view_as_real(rfft2(x)).flatten() == ((rows @ x).view(H, 2W) @ columns).flatten()
        irfft2(Z, s=(H, W)) == rows.t() @ (view_as_real(Z).view(H, -1) @ columns_inverse).view(2H, W)
    """
    k = torch.arange(height, device=device)
    angle_h = (2 * math.pi / height) * (k[:, None] * k[None, :] % height).to(dtype)  # (kh, h)
    rows = torch.stack((angle_h.cos(), -angle_h.sin()), dim=1).reshape(2 * height, height) * height ** -0.5
    w = torch.arange(width, device=device)
    angle_w = (2 * math.pi / width) * (w[:, None] * w[None, :width // 2 + 1] % width).to(dtype)  # (w, kw)
    cos, sin = angle_w.cos(), angle_w.sin()
    # (re + i im) * (cos - i sin) = (re cos + im sin) + i (im cos - re sin)
    columns = torch.cat((torch.stack((cos, -sin), -1), torch.stack((sin, cos), -1))).flatten(1) * width ** -0.5
    columns_inverse = columns.t() * column_weights(width, dtype, device).repeat_interleave(2)[:, None]
    return rows, columns, columns_inverse.contiguous()


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


class SeparableDFT2:
    """The transform as products with the 1D matrices of `separable_dft_matrices` (rows,
    columns, columns_inverse), in their dtype. The products along H run on channels-last data
    (B, H, W * C), the maps' layout in the network: one GEMM per image, with no copy of the input
    before it, and maps returned in channels-last memory."""

    def __init__(self, rows: Tensor, columns: Tensor, columns_inverse: Tensor):
        self.rows, self.columns, self.columns_inverse = rows, columns, columns_inverse
        self.dtype = rows.dtype

    def _along_h_then_w(self, y: Tensor, columns: Tensor) -> Tensor:
        B, C, H, W = y.shape
        along_h = torch.matmul(self.rows, y.to(self.dtype).permute(0, 2, 3, 1).reshape(B, H, W * C))
        along_h = along_h.view(B, H, 2 * W, C).permute(0, 3, 1, 2).reshape(B * C * H, 2 * W)  # [real W, imag W]
        return torch.mm(along_h, columns).view(B, C, -1)

    def _along_w_then_h(self, spectrum: Tensor, size: Tuple[int, int], columns: Tensor) -> Tensor:
        (B, C), (H, W) = spectrum.shape[:2], size
        along_w = torch.matmul(spectrum.to(self.dtype).view(B, C, H, -1), columns)  # (B, C, H, [real W, imag W])
        along_w = along_w.view(B, C, 2 * H, W).permute(0, 2, 3, 1).reshape(B, 2 * H, W * C)
        return torch.matmul(self.rows.t(), along_w).view(B, H, W, C).permute(0, 3, 1, 2)

    def forward(self, y: Tensor) -> Tensor:
        return self._along_h_then_w(y, self.columns)

    def inverse(self, spectrum: Tensor, size: Tuple[int, int]) -> Tensor:
        return self._along_w_then_h(spectrum, size, self.columns_inverse)

    def forward_adjoint(self, grad: Tensor, size: Tuple[int, int]) -> Tensor:
        return self._along_w_then_h(grad, size, self.columns.t())

    def inverse_adjoint(self, grad: Tensor) -> Tensor:
        return self._along_h_then_w(grad, self.columns_inverse.t())


Transform = Union[FFT2, MatmulDFT2, SeparableDFT2]


def _default_kind(size: Tuple[int, int], dtype: torch.dtype) -> str:
    if dtype in (torch.bfloat16, torch.float16):
        if size[0] * size[1] <= DFT_MATMUL_MAX_PIXELS_HALF:
            return 'matmul'
        return 'separable' if max(size) <= DFT_SEPARABLE_MAX_SIDE_HALF else 'fft'
    return 'matmul' if size[0] * size[1] <= DFT_MATMUL_MAX_PIXELS else 'fft'


@torch.jit.unused
def dft_for(size: Tuple[int, int], dtype: torch.dtype, device: torch.device) -> Transform:
    """The transform for (H, W) maps of `dtype`: forced by `spectral_transform` or timm's
    exportable config, else by map size and dtype (DFT_MATMUL_MAX_PIXELS, _HALF,
    DFT_SEPARABLE_MAX_SIDE_HALF). DFT matrices compute in `dtype` (half precision included: their
    error is that of a linear layer; tests/test_precision.py), the FFT in float64 for float64
    maps, else float32."""
    kind = _forced_kind or ('matmul' if is_exportable() else _default_kind(size, dtype))
    if kind == 'fft':
        return FFT2(torch.float64 if dtype == torch.float64 else torch.float32)
    make, transform = (dft_matrices, MatmulDFT2) if kind == 'matmul' else (separable_dft_matrices, SeparableDFT2)
    if torch.compiler.is_compiling():  # traced (torch.compile, torch.export): built from the sizes, by ops
        # (phases in at least float32: in half precision they would be off by 1e-2)
        matrices = make(size[0], size[1], torch.promote_types(dtype, torch.float32), device)
        return transform(*(m.to(dtype) for m in matrices))
    key = (kind, size[0], size[1], dtype, device)
    if key not in _MATRIX_CACHE:
        # Built in float64 on the CPU, then cast: exact to the last bit of the dtype. Never as
        # inference tensors (a first call under inference_mode): autograd may save them later.
        with torch.inference_mode(False):
            _MATRIX_CACHE[key] = tuple(m.to(device, dtype) for m in make(*size))
    return transform(*_MATRIX_CACHE[key])

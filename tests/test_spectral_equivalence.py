"""The fast paths against the plain formulas, in float64: the spectral mixer (DFT by matmul or
by FFT, one autograd Function with a hand-written backward) against
irfft2(rfft2(y, ortho) * filters) -> pwconv2 under autograd, and StarReLU against
s * relu(x)**2 + b. Outputs and the gradients of the input and of every parameter agree to 1e-10."""
import pytest
import timm
import torch
import torch.nn.functional as F

import models.dfformer as dff
from models import layers
from models.layers import mixers, spectral

TOL = 1e-10


def plain_spectral_mix(y, routing, bases, proj_weight, out_dtype):
    H, W = y.shape[2:]
    bases = layers.resize_filter_bases(bases, (H, W // 2 + 1))
    if routing is None:
        filters = torch.view_as_complex(bases.permute(2, 0, 1, 3).contiguous())
    else:
        filters = torch.einsum('bnm,hwnc->bmhwc', routing, bases)
        filters = torch.view_as_complex(filters.contiguous())
    out = torch.fft.irfft2(torch.fft.rfft2(y, norm='ortho') * filters, s=(H, W), norm='ortho')
    return F.linear(out.permute(0, 2, 3, 1), proj_weight).to(out_dtype)


def plain_star_relu(self, x):
    return self.scale * F.relu(x) ** 2 + self.bias


@pytest.fixture
def plain_formulas(monkeypatch):
    """Within the fixture's scope, the model code runs the plain formulas."""
    def use():
        monkeypatch.setattr(mixers, 'spectral_mix', plain_spectral_mix)
        monkeypatch.setattr(layers.StarReLU, 'forward', plain_star_relu)
    return use


def _outputs_and_grads(module, x):
    x = x.clone().requires_grad_()
    module.zero_grad(set_to_none=True)
    out = module(x)
    # A non-uniform output gradient (a plain sum would hide errors in the adjoints).
    out.backward(torch.randn(out.shape, dtype=out.dtype, generator=torch.Generator().manual_seed(1)))
    grads = {name: p.grad.clone() for name, p in module.named_parameters() if p.grad is not None}
    return out.detach(), x.grad, grads


def _assert_same(module, x, plain_formulas):
    ours = _outputs_and_grads(module, x)
    plain_formulas()
    plain = _outputs_and_grads(module, x)
    assert (ours[0] - plain[0]).abs().max() <= TOL
    assert (ours[1] - plain[1]).abs().max() <= TOL
    assert ours[2].keys() == plain[2].keys() and ours[2]
    for name in plain[2]:
        assert (ours[2][name] - plain[2][name]).abs().max() <= TOL, name


def _perturb(module):
    """Random weights everywhere (the init leaves StarReLU at s=1, b=0 and filters near zero)."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.5)


# Map sizes: tiny, odd, non-square, even, on both sides of DFT_MATMUL_MAX_PIXELS.
SIZES = [(1, 1), (2, 3), (3, 2), (5, 7), (7, 7), (8, 5), (14, 14), (13, 17), (16, 16), (20, 9)]


@pytest.mark.parametrize('mixer', ['dynamic_filter', 'global_filter'])
@pytest.mark.parametrize('size', SIZES, ids=lambda s: f'{s[0]}x{s[1]}')
def test_spectral_mixer_equals_plain_formula(mixer, size, plain_formulas):
    torch.manual_seed(0)
    module = dff.TOKEN_MIXERS[mixer](12, size=(6, 5)).double()  # filters resized to every size
    _perturb(module)
    _assert_same(module, torch.randn(2, *size, 12, dtype=torch.float64), plain_formulas)


@pytest.mark.parametrize('size', [(1, 1), (7, 7), (14, 14), (13, 17), (28, 9)], ids=lambda s: f'{s[0]}x{s[1]}')
def test_dft_matrices_and_fft_agree(size):
    """The DFT matrices, forced on the same map as the FFT, give the same outputs and gradients."""
    torch.manual_seed(0)
    module = layers.DynamicFilter(8, size=size).double()
    _perturb(module)
    x = torch.randn(2, *size, 8, dtype=torch.float64)
    with layers.spectral_transform('fft'):
        fft = _outputs_and_grads(module, x)
    with layers.spectral_transform('matmul'):
        matrices = _outputs_and_grads(module, x)
    for a, b in zip(fft[:2], matrices[:2]):
        assert (a - b).abs().max() <= TOL
    for name in fft[2]:
        assert (fft[2][name] - matrices[2][name]).abs().max() <= TOL, name


@pytest.mark.parametrize('dtype, size, transform', [
    (torch.float32, (7, 7), layers.MatmulDFT2), (torch.float32, (8, 8), layers.MatmulDFT2),
    (torch.float32, (14, 14), layers.FFT2), (torch.float64, (7, 7), layers.MatmulDFT2),
    (torch.bfloat16, (14, 14), layers.MatmulDFT2), (torch.float16, (15, 13), layers.MatmulDFT2),
    (torch.bfloat16, (28, 28), layers.FFT2), (torch.float16, (56, 56), layers.FFT2),
], ids=str)
def test_transform_chosen_by_dtype_and_size(dtype, size, transform):
    assert type(layers.dft_for(size, dtype, torch.device('cpu'))) is transform


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
@pytest.mark.parametrize('name', ['dfformer_s18', 'gfformer_s18'])
def test_half_precision_models_take_the_half_precision_transforms(name, dtype, monkeypatch):
    """A half-precision model at 224 px, in inference, transforms all its maps channels-last by the
    1D DFT matrices in its dtype; under autocast, or with gradients, its 14x14 and 7x7 maps by the
    2D DFT matrices in its dtype and its 56x56 and 28x28 maps by the FFT in float32 (a silent
    fallback to another transform fails here)."""
    calls = []
    for transform, spatial in ((layers.FFT2, slice(2, 4)), (layers.MatmulDFT2, slice(2, 4)),
                               (layers.ChannelsLastDFT2, slice(1, 3))):
        forward = transform.forward
        monkeypatch.setattr(transform, 'forward', lambda self, y, forward=forward, spatial=spatial: (
            calls.append((type(self).__name__, tuple(y.shape[spatial]), self.dtype)) or forward(self, y)))
    model = timm.create_model(name, depths=(1, 1, 1, 1), num_classes=3).eval()
    x = torch.randn(1, 3, 224, 224)
    sizes = [(56, 56), (28, 28), (14, 14), (7, 7)]
    with torch.inference_mode():
        model.to(dtype)(x.to(dtype))
        assert calls == [('ChannelsLastDFT2', size, dtype) for size in sizes]
        calls.clear()
        with torch.autocast('cpu', dtype=dtype):
            model.float()(x)
    out = model.to(dtype)(x.to(dtype))
    expected = [('FFT2', (56, 56), torch.float32), ('FFT2', (28, 28), torch.float32),
                ('MatmulDFT2', (14, 14), dtype), ('MatmulDFT2', (7, 7), dtype)]
    assert calls == expected * 2
    out.sum().backward()  # (a half-precision model trains through the Function)


@pytest.mark.parametrize('dtype, size, chosen', [
    (torch.bfloat16, (56, 56), True), (torch.float16, (7, 9), True), (torch.bfloat16, (64, 3), True),
    (torch.bfloat16, (65, 8), False), (torch.float32, (14, 14), False), (torch.float64, (7, 7), False),
], ids=str)
def test_channels_last_transform_chosen_by_dtype_and_size(dtype, size, chosen):
    dft = layers.channels_last_dft_for(size, dtype, torch.device('cpu'))
    assert (type(dft) is layers.ChannelsLastDFT2 and dft.dtype == dtype) if chosen else dft is None
    if chosen:  # a forced transform or an exportable model takes the others
        with layers.spectral_transform('fft'):
            assert layers.channels_last_dft_for(size, dtype, torch.device('cpu')) is None
        with timm.layers.set_layer_config(exportable=True):
            assert layers.channels_last_dft_for(size, dtype, torch.device('cpu')) is None


@pytest.mark.parametrize('size', SIZES, ids=lambda s: f'{s[0]}x{s[1]}')
def test_channels_last_transform_equals_fft(size):
    H, W = size
    dft = layers.ChannelsLastDFT2(*layers.separable_dft_matrices(H, W))
    y = torch.randn(2, H, W, 3, dtype=torch.float64)
    spectrum = torch.fft.rfft2(y.permute(0, 3, 1, 2), norm='ortho')  # (B, C, H, K)
    planes = torch.stack((spectrum.real, spectrum.imag), 2).permute(0, 3, 2, 4, 1)  # (B, H, 2, K, C)
    assert (dft.forward(y) - planes).abs().max() <= TOL
    z = torch.randn(2, 3, H, W // 2 + 1, dtype=torch.complex128)
    z_planes = torch.stack((z.real, z.imag), 2).permute(0, 3, 2, 4, 1).contiguous()
    assert (dft.inverse(z_planes, size) - torch.fft.irfft2(z, s=size, norm='ortho').permute(0, 2, 3, 1)).abs().max() \
        <= TOL


@pytest.mark.parametrize('mixer', ['dynamic_filter', 'global_filter'])
@pytest.mark.parametrize('size', SIZES, ids=lambda s: f'{s[0]}x{s[1]}')
def test_channels_last_mixer_equals_plain_formula(mixer, size, plain_formulas, monkeypatch):
    """The mixer's half-precision inference path, run in float64, against the plain formula."""
    torch.manual_seed(0)
    module = dff.TOKEN_MIXERS[mixer](12, size=(6, 5)).double().eval()
    _perturb(module)
    x = torch.randn(2, *size, 12, dtype=torch.float64)
    taken = []
    monkeypatch.setattr(spectral, 'channels_last_dft_for', lambda size, dtype, device: taken.append(size) or (
        layers.ChannelsLastDFT2(*layers.separable_dft_matrices(*size))))
    with torch.no_grad():
        ours = module(x)
        assert taken == [size]
        plain_formulas()
        monkeypatch.setattr(spectral, 'channels_last_dft_for', lambda size, dtype, device: None)
        assert (ours - module(x)).abs().max() <= TOL


def test_star_relu_equals_plain_formula(plain_formulas):
    module = layers.StarReLU(scale_value=0.8, bias_value=-0.3, inplace=True).double()
    x = torch.randn(3, 5, 7, dtype=torch.float64)
    with torch.no_grad():
        inference = module(x.clone())  # (in place, in x's buffer)
    _assert_same(module, x, plain_formulas)
    assert (inference - module(x)).abs().max() <= TOL


@pytest.mark.parametrize('name', ['dfformer_s18', 'gfformer_s18', 'dfformer_s18_afno', 'cdfformer_s18'])
@pytest.mark.parametrize('img_size', [32, 45, (40, 23)], ids=str)
def test_whole_model_equals_plain_formulas(name, img_size, plain_formulas):
    """Every family, at odd, non-square and tiny maps (the last stages are 1x1 and 2x1 here)."""
    torch.manual_seed(0)
    model = timm.create_model(name, img_size=32, depths=(1, 1, 2, 1), dims=(8, 16, 24, 32),
                              num_classes=5).double()
    _perturb(model)
    model.train()
    size = img_size if isinstance(img_size, tuple) else (img_size, img_size)
    with torch.no_grad():
        for m in model.modules():  # perturbed weights overflow through 5 stages without a rescale
            if isinstance(m, torch.nn.Linear):
                m.weight.mul_(0.4)
    _assert_same(model, torch.randn(2, 3, *size, dtype=torch.float64), plain_formulas)

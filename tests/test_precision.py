"""Low precision loses no more than ConvFormer does: the relative error of each family's logits in
bf16 / fp16 (autocast, and the whole model cast) against its own float32 logits is at most 1.5x
that of timm's convformer_s18 on the same input. The spectral weights are scaled up so that the
spectral path weighs in the logits (at init the filters are near zero)."""
import pytest
import timm
import torch

import models  # noqa: F401  (registers the models)

BOUND = 1.5
FAMILIES = ['dfformer_s18', 'cdfformer_s18', 'gfformer_s18', 'dfformer_s18_afno']
PRECISIONS = {
    'bf16-autocast': (torch.bfloat16, True), 'fp16-autocast': (torch.float16, True),
    'bf16': (torch.bfloat16, False), 'fp16': (torch.float16, False),
}


def _model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    model = timm.create_model(name).eval()
    with torch.no_grad():
        for key, p in model.named_parameters():
            if key.endswith('complex_weights'):
                p.mul_(50)
    return model


def relative_error(name: str, dtype: torch.dtype, autocast: bool, x: torch.Tensor) -> float:
    """||logits(low precision) - logits(float32)|| / ||logits(float32)||."""
    model = _model(name)
    with torch.inference_mode():
        reference = model(x).double()
        if autocast:
            with torch.autocast('cpu', dtype=dtype):
                out = model(x)
        else:
            out = model.to(dtype)(x.to(dtype))
    return ((out.double() - reference).norm() / reference.norm()).item()


@pytest.fixture(scope='module')
def image():
    return torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope='module')
def convformer_error(image):
    return {p: relative_error('convformer_s18', *PRECISIONS[p], image) for p in PRECISIONS}


@pytest.mark.parametrize('precision', PRECISIONS)
@pytest.mark.parametrize('name', FAMILIES)
def test_low_precision_error_within_convformer_bound(name, precision, image, convformer_error):
    error = relative_error(name, *PRECISIONS[precision], image)
    assert 0 < error <= BOUND * convformer_error[precision], (error, convformer_error[precision])

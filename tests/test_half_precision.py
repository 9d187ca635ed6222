"""Models cast whole to bfloat16 / float16 run on CPU (the FFTs and filters stay in float32) and
agree with float32."""
import copy

import pytest
import timm
import torch
import torch.nn.functional as F
from conftest import build_from_spec, load_fixture

from models import MODEL_ARCHS

DTYPES = [torch.bfloat16, torch.float16]
CASES = ['cls_dynamic', 'cls_cdf', 'cls_global', 'cls_afno', 'cls_k2_d8', 'cls_gelu', 'cls_relu']


def _cosine(a, b):
    return F.cosine_similarity(a.float().flatten(), b.float().flatten(), dim=0).item()


@pytest.mark.parametrize('case', CASES)
def test_perturbed_models_cast_whole_agree_with_float32(case):
    """The authors' outputs of tiny models with perturbed weights, from the cast model."""
    fixture = load_fixture(case)
    model = build_from_spec(fixture['spec']).eval()
    model.load_state_dict(fixture['state_dict'])
    for dtype in DTYPES:
        cast = copy.deepcopy(model).to(dtype)
        with torch.no_grad():
            out = cast(fixture['input'].to(dtype))
        assert out.dtype == dtype
        assert _cosine(out, fixture['outputs'][0]) >= 0.99


@pytest.mark.parametrize('name', sorted(MODEL_ARCHS))
def test_every_model_runs_cast_whole(name):
    model = timm.create_model(name, num_classes=10).eval()
    x = torch.randn(2, 3, 48, 40)
    with torch.no_grad():
        ref = model(x)
        for dtype in DTYPES:
            out = copy.deepcopy(model).to(dtype)(x.to(dtype))
            assert out.dtype == dtype and torch.isfinite(out).all()
            assert _cosine(out, ref) >= 0.99

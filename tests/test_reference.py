"""Faithfulness to the authors' implementation, pinned by tests/fixtures (see its README)."""
import json
import os

import pytest
import timm
import torch
from conftest import FIXTURES, build_from_spec, load_fixture

from models import MODEL_ARCHS, resize_filter_bases

CASES = ['cls_dynamic', 'cls_cdf', 'cls_global', 'cls_afno', 'cls_k2_d8', 'cls_gelu', 'cls_relu',
         'dense_dynamic', 'dense_cdf_last3']
FULL = json.load(open(os.path.join(FIXTURES, 'full_models.json')))


def _assert_close(ours, ref):
    assert ours.shape == ref.shape
    rel = (ours - ref).abs().max() / ref.abs().max()
    assert rel <= 1e-4, f'relative error {rel:.2e}'


@pytest.mark.parametrize('case', CASES)
def test_fixture_outputs(case):
    fixture = load_fixture(case)
    model = build_from_spec(fixture['spec']).eval()
    model.load_state_dict(fixture['state_dict'], strict=True)
    with torch.no_grad():
        out = model(fixture['input'])
    outs = out if isinstance(out, list) else [out]
    assert len(outs) == len(fixture['outputs'])
    for ours, ref in zip(outs, fixture['outputs']):
        _assert_close(ours, ref)


def test_fixture_perturbation_is_detected():
    """The comparison above can fail: a perturbed filter basis changes the output."""
    fixture = load_fixture('cls_dynamic')
    model = build_from_spec(fixture['spec']).eval()
    state = dict(fixture['state_dict'])
    key = 'stages.0.0.token_mixer.complex_weights'
    state[key] = state[key].flip(0)
    model.load_state_dict(state)
    with torch.no_grad():
        out = model(fixture['input'])
    with pytest.raises(AssertionError):
        _assert_close(out, fixture['outputs'][0])


def test_resize_filters_matches_authors_loader():
    fixture = load_fixture('resize_filters')
    target = fixture['spec']['target_input']
    for name, expected in fixture['resized'].items():
        stage = int(name.split('.')[1])
        stride = 2 ** (stage + 2)
        size = (target[0] // stride, target[1] // stride // 2 + 1)
        ours = resize_filter_bases(fixture['state_dict'][name], size)
        _assert_close(ours, expected)


@pytest.mark.parametrize('name', sorted(MODEL_ARCHS))
def test_full_model_names_shapes_counts(name):
    assert name in FULL, 'every zoo model has a reference entry'
    model = timm.create_model(name)
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert shapes == FULL[name]['tensors']
    assert sum(p.numel() for p in model.parameters()) == FULL[name]['num_params']


def test_zoo_is_complete():
    assert set(FULL) == set(MODEL_ARCHS)


def test_autocast_keeps_fft_and_filters_float32():
    from models.layers import mix_filter_bases
    fixture = load_fixture('cls_dynamic')
    model = build_from_spec(fixture['spec']).eval()
    model.load_state_dict(fixture['state_dict'])
    routing = torch.softmax(torch.randn(2, 4, 32), dim=1)
    with torch.autocast('cpu', dtype=torch.bfloat16), torch.no_grad():
        assert mix_filter_bases(routing, torch.randn(8, 5, 4, 2), (8, 5)).dtype == torch.complex64
        out = model(fixture['input'])
    ref = fixture['outputs'][0]
    assert torch.isfinite(out).all()
    assert (out.float() - ref).abs().max() / ref.abs().max() < 0.05  # bf16 matmuls, float32 FFTs
    model.train()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        model(fixture['input']).float().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())

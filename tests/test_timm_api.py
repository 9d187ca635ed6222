"""The checks of timm's own model test-suite (tests/test_models.py in timm's source), applied to
every model of the zoo, at the input sizes that suite uses (TorchScript and FX included)."""
import math

import pytest
import timm
import torch
from timm.models import get_notrace_functions, get_notrace_modules
from timm.optim import create_optimizer_v2
from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

from models import MODEL_ARCHS, arch_args

MODELS = sorted(MODEL_ARCHS)


def _input_size(model, target):
    size = model.pretrained_cfg['input_size']
    return tuple(min(s, target) for s in size)


def _fx_model(model, train=False):
    tracer_kwargs = dict(
        leaf_modules=get_notrace_modules(), autowrap_functions=get_notrace_functions(), param_shapes_constant=True)
    train_nodes, eval_nodes = get_graph_node_names(model, tracer_kwargs=tracer_kwargs)
    return create_feature_extractor(
        model, train_return_nodes=[train_nodes[-1]], eval_return_nodes=[eval_nodes[-1]], tracer_kwargs=tracer_kwargs)


@pytest.mark.parametrize('name', MODELS)
def test_forward_and_grad_checkpointing(name):
    model = timm.create_model(name).eval()
    x = torch.randn(1, *_input_size(model, 384))
    with torch.no_grad():
        out = model(x)
        assert out.shape == (1, 1000) and not torch.isnan(out).any()
        model.set_grad_checkpointing()
        assert torch.allclose(model(x), out, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('name', MODELS)
def test_backward_reaches_every_parameter(name):
    model = timm.create_model(name, num_classes=42).train()
    out = model(torch.randn(2, *_input_size(model, 128)))
    out.mean().backward()
    assert out.shape == (2, 42)
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f'no gradient for {missing}'


@pytest.mark.parametrize('name', MODELS)
def test_default_cfg_and_heads(name):
    model = timm.create_model(name).eval()
    cfg = model.pretrained_cfg
    assert model.num_classes == cfg['num_classes'] == 1000
    assert model.num_features == model.head_hidden_size > 0
    state_dict = model.state_dict()
    assert cfg['classifier'] + '.weight' in state_dict
    assert cfg['first_conv'] + '.weight' in state_dict
    assert cfg['crop_pct'] == 1.0 and cfg['interpolation'] == 'bicubic'
    x = torch.randn(1, *cfg['input_size'])
    with torch.no_grad():
        features = model.forward_features(x)
        assert features.shape[1] == model.num_features and tuple(features.shape[2:]) == cfg['pool_size']
        pre_logits = model.forward_head(features, pre_logits=True)
        assert pre_logits.shape == (1, model.head_hidden_size)
        model.reset_classifier(0)
        assert model.num_classes == 0
        assert torch.allclose(model(x), pre_logits, rtol=1e-5, atol=1e-6)
        model.reset_classifier(0, '')
        assert tuple(model(x).shape[2:]) == cfg['pool_size']
        unpooled = timm.create_model(name, num_classes=0, global_pool='').eval()
        assert unpooled(x).shape == features.shape
        model.reset_classifier(7)
        assert model.get_classifier().out_features == 7


@pytest.mark.parametrize('name', MODELS)
def test_features_only(name):
    model = timm.create_model(name, features_only=True).eval()
    assert model.feature_info.channels() == list(arch_args(name)['dims'])
    assert model.feature_info.reduction() == [4, 8, 16, 32]
    size = _input_size(model, 96)
    with torch.no_grad():
        outs = model(torch.randn(1, *size))
    assert len(outs) == 4
    for channels, reduction, out in zip(model.feature_info.channels(), model.feature_info.reduction(), outs):
        assert out.shape[1] == channels
        assert out.shape[2] <= math.ceil(size[1] / reduction) + 1
        assert out.shape[3] <= math.ceil(size[2] / reduction) + 1


@pytest.mark.parametrize('name', MODELS)
def test_forward_intermediates(name):
    model = timm.create_model(name).eval()
    x = torch.randn(1, *_input_size(model, 96))
    with torch.no_grad():
        final, intermediates = model.forward_intermediates(x)
        assert [t.shape[1] for t in intermediates] == model.dims
        assert torch.allclose(final, model.forward_features(x))
        assert len(model.forward_intermediates(x, indices=2, intermediates_only=True)) == 2
        model.set_grad_checkpointing()
        assert torch.allclose(model.forward_intermediates(x)[0], final, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('name', MODELS)
def test_torchscript(name):
    with timm.set_scriptable(True):
        model = timm.create_model(name).eval()
    scripted = torch.jit.script(model)
    x = torch.randn(1, *_input_size(model, 128))
    with torch.no_grad():
        # TorchScript transforms every map by FFT, eager the small ones by DFT matmul: equal to
        # float32 round-off (outputs are of order 1).
        assert torch.allclose(scripted(x), model(x), rtol=1e-5, atol=2e-5)


@pytest.mark.parametrize('name', MODELS)
def test_fx_forward_exact(name):
    model = timm.create_model(name).eval()
    x = torch.randn(1, *_input_size(model, 128))
    with torch.inference_mode():
        out = model(x)
        fx_out = tuple(_fx_model(model)(x).values())[0]
    assert torch.equal(fx_out, out)


@pytest.mark.parametrize('name', MODELS)
def test_fx_backward(name):
    model = _fx_model(timm.create_model(name, num_classes=42).train(), train=True)
    out = tuple(model(torch.randn(2, 3, 128, 128)).values())[0]
    out.mean().backward()
    assert out.shape == (2, 42)
    assert all(p.grad is not None for p in model.parameters())


def test_group_matcher_and_weight_decay_groups():
    model = timm.create_model('dfformer_s18')
    groups = create_optimizer_v2(model, 'adamw', lr=1e-3, weight_decay=0.05).param_groups
    decayed = {id(p) for g in groups if g['weight_decay'] > 0 for p in g['params']}
    for name, p in model.named_parameters():
        # The authors' recipe: decay on every tensor of 2+ dims (the filter bases too), none on 1-dim.
        assert (id(p) in decayed) == (p.ndim > 1), name
    layer_groups = timm.models.group_parameters(model, model.group_matcher())
    assert len(layer_groups) > 4

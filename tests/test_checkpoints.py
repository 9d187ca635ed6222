"""Pretrained loading through timm (pretrained_cfg file overlay, as the release URLs would),
filter resizing for other input sizes, and the errors for bad files."""
import pytest
import timm
import torch

import models
from models import CheckpointError, DFFormer, checkpoint_filter_fn, load_checkpoint, resize_filter_bases
from models.dfformer import RELEASE_URL, RELEASED

TINY = dict(depths=(1, 1, 2, 1), dims=(16, 32, 48, 64))


@pytest.fixture(scope='module')
def s18_checkpoint(tmp_path_factory):
    """An authors'-format checkpoint (a plain state_dict) of dfformer_s18."""
    torch.manual_seed(0)
    model = timm.create_model('dfformer_s18')
    path = tmp_path_factory.mktemp('ckpt') / 'dfformer_s18.pth'
    torch.save(model.state_dict(), path)
    return path, model.state_dict()


def _pretrained(name, path, **kwargs):
    return timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=str(path)), **kwargs)


def test_release_urls():
    assert len(RELEASED) == 8
    for name in RELEASED:
        assert timm.create_model(name).pretrained_cfg['url'] == RELEASE_URL.format(name)


def test_pretrained_loads_exactly(s18_checkpoint):
    path, state = s18_checkpoint
    loaded = _pretrained('dfformer_s18', path).state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())


def test_pretrained_other_input_size_resizes_filters(s18_checkpoint):
    path, state = s18_checkpoint
    model = _pretrained('dfformer_s18', path, img_size=384)
    key = 'stages.0.0.token_mixer.complex_weights'
    assert model.state_dict()[key].shape == (96, 49, 4, 2)
    assert torch.allclose(model.state_dict()[key], resize_filter_bases(state[key], (96, 49)))


def test_pretrained_other_num_classes_and_in_chans(s18_checkpoint):
    path, state = s18_checkpoint
    model = _pretrained('dfformer_s18', path, num_classes=5, in_chans=1)
    loaded = model.state_dict()
    assert loaded['head.fc2.weight'].shape == (5, 2048)
    assert torch.equal(loaded['head.fc1.weight'], state['head.fc1.weight'])  # only the last layer is new
    assert loaded['downsample_layers.0.conv.weight'].shape[1] == 1
    with torch.no_grad():
        assert model(torch.randn(1, 1, 64, 64)).shape == (1, 5)


def test_pretrained_features_only(s18_checkpoint):
    path, state = s18_checkpoint
    model = _pretrained('dfformer_s18', path, features_only=True)
    loaded = model.model.state_dict()  # (timm's FeatureGetterNet wraps the classifier)
    assert all(torch.equal(loaded[k], state[k]) for k in loaded if k.startswith(('stages.', 'downsample_layers.')))
    assert [f.shape[1] for f in model(torch.randn(1, 3, 64, 64))] == [64, 128, 320, 512]


def test_truncated_checkpoint_one_line_error(s18_checkpoint, tmp_path):
    path, _ = s18_checkpoint
    bad = tmp_path / 'truncated.pth'
    bad.write_bytes(path.read_bytes()[:100_000])
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(timm.create_model('dfformer_s18'), bad)
    message = str(info.value)
    assert str(bad) in message and 'cannot read checkpoint' in message and '\n' not in message


def test_missing_file_error(tmp_path):
    with pytest.raises(CheckpointError, match='no such checkpoint file'):
        load_checkpoint(DFFormer(**TINY), tmp_path / 'nope.pth')


def test_checkpoint_of_another_model_is_named(tmp_path):
    path = tmp_path / 'cdf.pth'
    torch.save(DFFormer(token_mixers=('sepconv', 'sepconv', 'dynamic_filter', 'dynamic_filter'), **TINY).state_dict(),
               path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(DFFormer(**TINY), path)
    message = str(info.value)
    assert 'missing' in message and 'unexpected' in message and 'another model' in message
    assert '\n' not in message


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / 'pickle.pth'
    torch.save({'state_dict': DFFormer(**TINY).state_dict(), 'obj': torch.nn.ReLU()}, path)
    with pytest.raises(CheckpointError, match='cannot read checkpoint'):
        load_checkpoint(DFFormer(**TINY), path)


def test_training_checkpoint_layout_and_ema(tmp_path):
    model, ema = DFFormer(**TINY), DFFormer(**TINY)
    path = tmp_path / 'last.pth.tar'
    torch.save({'epoch': 3, 'arch': 'x', 'state_dict': model.state_dict(), 'state_dict_ema': ema.state_dict(),
                'args': {'lr': 1e-3}}, path)
    assert not torch.equal(model.state_dict()['head.fc2.weight'], ema.state_dict()['head.fc2.weight'])
    target = DFFormer(**TINY)
    load_checkpoint(target, path, use_ema=True)
    assert torch.equal(target.state_dict()['head.fc2.weight'], ema.state_dict()['head.fc2.weight'])
    load_checkpoint(target, path)
    assert torch.equal(target.state_dict()['head.fc2.weight'], model.state_dict()['head.fc2.weight'])


@pytest.mark.parametrize('size', [(97, 131), (64, 64), (255, 33)])
def test_any_input_size(size):
    model = DFFormer(img_size=64, **TINY).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, *size))
    assert out.shape == (1, 1000) and torch.isfinite(out).all()


def test_on_the_fly_resize_equals_load_time_resize():
    """A model built for 64 run at 96x80 == the same weights resized into a model built for 96x80."""
    torch.manual_seed(0)
    small = DFFormer(img_size=64, **TINY).eval()
    big = DFFormer(img_size=(96, 80), **TINY).eval()
    big.load_state_dict(checkpoint_filter_fn(small.state_dict(), big))
    x = torch.randn(2, 3, 96, 80)
    with torch.no_grad():
        assert torch.allclose(small(x), big(x), rtol=1e-4, atol=1e-5)
    # at its own size nothing is resized: the bases themselves are used, and the output equals that of
    # a model whose filters never went through resizing (bases copied into a fresh model)
    bases = small.stages[0][0].token_mixer.complex_weights
    assert resize_filter_bases(bases, tuple(bases.shape[:2])) is bases
    fresh = DFFormer(img_size=64, **TINY).eval()
    with torch.no_grad():
        for name, p in fresh.named_parameters():
            p.copy_(small.get_parameter(name))
        y = torch.randn(2, 3, 64, 64)
        assert torch.equal(small(y), fresh(y))


def test_resume_does_not_resize_filters(tmp_path):
    """Resuming (resize_filters=False) a checkpoint whose filters are of another size is an error
    naming both sizes, not a silent resize (the optimizer state would not fit)."""
    path = tmp_path / 'plain64.pth'
    torch.save(DFFormer(img_size=64, **TINY).state_dict(), path)
    load_checkpoint(DFFormer(img_size=32, **TINY), path)  # a load for fine-tuning resizes them
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(DFFormer(img_size=32, **TINY), path, resize_filters=False)
    message = str(info.value)
    assert 'has filters for 64x64 px input (stages.0.0.token_mixer.complex_weights 16x9)' in message
    assert 'the model for 32x32 px (8x5)' in message and '\n' not in message
    load_checkpoint(DFFormer(img_size=64, **TINY), path, resize_filters=False)  # same size: loads


def test_not_a_checkpoint_is_named(tmp_path):
    for name, content, expected in (
            ('notes.pth', b'hello world\n', "not a PyTorch or safetensors file (it starts with b'hello wo')"),
            ('empty.pth', b'', 'the file is empty'),
    ):
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(CheckpointError) as info:
            load_checkpoint(DFFormer(**TINY), path)
        assert str(info.value).startswith(f'{path}: cannot read checkpoint') and expected in str(info.value)


SMALL_SIZES = [8, 9, 13, 16, 17, 31, 32, (8, 23), (31, 9)]


@pytest.mark.parametrize('name', sorted(models.MODEL_ARCHS))
def test_every_model_runs_at_small_sizes(name):
    """Every zoo model, built for 8 px (its last stages' filters are then 1x1), runs at sizes from
    8 px up, odd and non-square: the filters are resized up from 1x1 on the fly."""
    torch.manual_seed(0)
    _run_at(timm.create_model(name, img_size=8, num_classes=3), SMALL_SIZES, 3)


def _run_at(model, sizes, num_classes):
    with torch.no_grad():
        for size in sizes:
            size = (size, size) if isinstance(size, int) else size
            out = model.eval()(torch.randn(1, 3, *size))
            assert out.shape == (1, num_classes) and torch.isfinite(out).all(), size


def test_models_built_for_224_and_for_odd_small_sizes_run_at_small_sizes():
    """A model built for 224 runs at small sizes (its filters resized down to the 1x1 maps), and
    models built for odd and non-square small sizes run at their own size and others."""
    torch.manual_seed(0)
    _run_at(timm.create_model('dfformer_s18', num_classes=3), SMALL_SIZES, 3)
    for img_size in (17, (31, 9)):
        _run_at(timm.create_model('gfformer_s18', img_size=img_size, num_classes=3), [img_size, 8, (8, 23)], 3)


def test_img_size_below_the_stem_is_refused():
    with pytest.raises(ValueError, match='img_size must be at least 3 pixels'):
        DFFormer(img_size=2, **TINY)

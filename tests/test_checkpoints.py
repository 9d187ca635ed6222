"""Pretrained loading through timm (pretrained_cfg file overlay, as the release URLs would),
filter resizing for other input sizes, and the errors for bad files."""
import pytest
import timm
import torch

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
    assert len(model(torch.randn(1, 3, 64, 64))) == 4


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
        # and at its own size the model is untouched by resizing
        y = torch.randn(2, 3, 64, 64)
        assert torch.equal(small(y), small(y))

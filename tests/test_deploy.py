"""Deployment tools, run for real and offline: inference.py, tools/avg_checkpoints.py,
tools/clean_checkpoint.py, tools/export_hf.py, hubconf.py (torch.hub), and the OpenMMLab
model-zoo files (README.md + metafile.yaml) of the segmentation and detection configs.

Scripts run in-process through their main(argv) (one python + torch import for the whole file);
one case per script family runs as a subprocess to see the command line's one-line errors.
"""
import csv
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import timm
import torch
import yaml
from conftest import ROOT, load_script
from PIL import Image
from timm.data import ImageNetInfo, create_transform, resolve_data_config

import models
from engine.cli import run_cli
from models.dfformer import RELEASED
from models.layers import DynamicFilter, SepConv

inference = load_script('inference.py')
avg_checkpoints = load_script('tools/avg_checkpoints.py')
clean_checkpoint = load_script('tools/clean_checkpoint.py')
export_hf = load_script('tools/export_hf.py')

ENV = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONWARNINGS': 'ignore', 'HF_HUB_OFFLINE': '1'}
TINY = dict(depths=(1, 1, 1, 1), dims=(16, 32, 48, 64), num_classes=10)


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')


def sha256(path) -> str:
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def run_cli_error(main, argv, capsys) -> str:
    """Run a script's main as its command line does; return its one stderr line (exit code 2)."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        run_cli(lambda: main(argv))
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'Traceback' not in err, err
    return err


def run_script(relpath, *args):
    return subprocess.run([sys.executable, os.path.join(ROOT, relpath), *map(str, args)],
                          capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=300)


# ----------------------------------------------------------------------------------------------
# Fixtures: a train.py-like run folder of tiny models, a classifier checkpoint, images

def _tiny_state(seed):
    torch.manual_seed(seed)
    return models.DFFormer(**TINY).state_dict()


def _train_checkpoint(epoch, metric, seed, eval_metric='top1', module_prefix=False):
    sd, ema = _tiny_state(seed), _tiny_state(seed + 100)
    if module_prefix:
        sd = {f'module.{k}': v for k, v in sd.items()}
    return {
        'epoch': epoch, 'arch': 'dfformer_s18', 'version': 2, 'metric': metric,
        'args': {'model': 'dfformer_s18', 'eval_metric': eval_metric, 'img_size': 32},
        'state_dict': sd, 'state_dict_ema': ema,
        'optimizer': {'state': {0: {'exp_avg': torch.ones(3)}}, 'param_groups': [{'lr': 0.1, 'params': [0]}]},
        'saver': {'best_metric': metric, 'best_epoch': epoch},
    }


@pytest.fixture(scope='module')
def run_dir(tmp_path_factory):
    """checkpoint-1..4 (top-1 70, 90, 80, 60), model_best (= epoch 2) and last (= epoch 4)."""
    root = tmp_path_factory.mktemp('run')
    for epoch, metric in zip((1, 2, 3, 4), (70.0, 90.0, 80.0, 60.0)):
        torch.save(_train_checkpoint(epoch, metric, seed=epoch, module_prefix=epoch == 2),
                   root / f'checkpoint-{epoch}.pth.tar')
    shutil.copy(root / 'checkpoint-2.pth.tar', root / 'model_best.pth.tar')
    shutil.copy(root / 'checkpoint-4.pth.tar', root / 'last.pth.tar')
    return root


def _weights(path, ema=False):
    return models.checkpoint.checkpoint_state_dict(models.read_checkpoint(str(path)), str(path), use_ema=ema)


def _mean(paths, ema=False):
    sds = [_weights(p, ema) for p in paths]
    return {k: (sum(sd[k].double() for sd in sds) / len(sds)).float() for k in sds[0]}


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k


IMAGES = ['img0.png', 'img1.png', 'img2.png', 'img3.png', os.path.join('sub', 'grey.jpg')]


@pytest.fixture(scope='module')
def s18_digits(tmp_path_factory):
    """A train.py checkpoint of dfformer_s18 with 10 classes at 32 px, images to classify and the
    class probabilities the model gives them (computed here directly)."""
    root = tmp_path_factory.mktemp('s18_digits')
    torch.manual_seed(0)
    model = timm.create_model('dfformer_s18', num_classes=10, img_size=32)
    with torch.no_grad():  # a head that tells the images apart
        model.head.fc2.weight.normal_(0, 1)
    ckpt = root / 'model_best.pth.tar'
    torch.save({'epoch': 3, 'state_dict': model.state_dict(), 'metric': 50.0,
                'args': {'model': 'dfformer_s18', 'img_size': 32, 'input_size': None}}, ckpt)
    images = root / 'images'
    (images / 'sub').mkdir(parents=True)
    rng = np.random.RandomState(0)
    for i, (h, w) in enumerate([(40, 30), (32, 32), (50, 64), (24, 24)]):
        Image.fromarray(rng.randint(0, 256, (h, w, 3), dtype=np.uint8)).save(images / f'img{i}.png')
    Image.fromarray(rng.randint(0, 256, (36, 36), dtype=np.uint8)).save(images / 'sub' / 'grey.jpg')
    (images / 'notes.txt').write_text('not an image')
    model.eval()
    transform = create_transform(**resolve_data_config({'img_size': 32}, model=model))
    x = torch.stack([transform(Image.open(images / n).convert('RGB')) for n in IMAGES])
    with torch.no_grad():
        probs = dict(zip(IMAGES, model(x).softmax(-1)))  # what inference.py must find
    return root, ckpt, images, probs


@pytest.fixture(scope='module')
def s18_release(tmp_path_factory):
    """A checkpoint in the layout of the authors' dfformer_s18.pth (a plain state dict, 1000 classes)."""
    root = tmp_path_factory.mktemp('s18_release')
    torch.manual_seed(1)
    state_dict = timm.create_model('dfformer_s18').state_dict()
    torch.save(state_dict, root / 'dfformer_s18.pth')
    return root / 'dfformer_s18.pth', state_dict


# ----------------------------------------------------------------------------------------------
# inference.py

def test_inference_folder_csv_topk(s18_digits, tmp_path):
    _, ckpt, images, expected_probs = s18_digits
    inference.main([str(images), '--model', 'dfformer_s18', '--checkpoint', str(ckpt), '--topk', '3',
                    '--include-index', '-j', '0', '--results-dir', str(tmp_path / 'res'), '--no-console-results'])
    # the default name carries the input size, taken from the train.py checkpoint's --img-size
    path = tmp_path / 'res' / 'dfformer_s18-32.csv'
    with open(path, newline='') as f:
        rows = list(csv.DictReader(f))
    assert [r['filename'] for r in rows] == IMAGES  # every image, sorted by path; notes.txt skipped
    for row in rows:
        probs, idx = expected_probs[row['filename']].topk(3)
        index, label, prob = json.loads(row['index']), json.loads(row['label']), json.loads(row['prob'])
        assert len(set(index)) == 3 and all(0 <= i < 10 for i in index)
        assert index == label == idx.tolist()  # no class names: the label is the index
        assert prob == sorted(prob, reverse=True) and sum(prob) <= 1 + 1e-6
        assert np.allclose(prob, probs.numpy(), rtol=0, atol=1e-6)
    assert len({r['index'] for r in rows}) > 1  # the images are told apart
    assert not glob.glob(str(tmp_path / 'res' / '*.tmp'))


def test_inference_file_list_json_class_map(s18_digits, tmp_path):
    _, ckpt, images, expected_probs = s18_digits
    listing = tmp_path / 'list.txt'
    listing.write_text(f'# two images\n{os.path.relpath(images / "img2.png", tmp_path)}\n\n{images / "img0.png"}\n')
    class_map = tmp_path / 'classes.txt'
    names = [f'digit {i}' for i in range(10)]
    class_map.write_text('\n'.join(names) + '\n')
    inference.main([str(listing), '--checkpoint', str(ckpt), '--class-map', str(class_map), '--topk', '2',
                    '-j', '0', '--results-dir', str(tmp_path), '--results-file', 'preds.json',
                    '--results-format', 'json', '--include-index', '--no-console-results'])
    results = json.loads((tmp_path / 'preds.json').read_text())
    assert list(results) == [os.path.relpath(images / 'img2.png', tmp_path), str(images / 'img0.png')]
    for r, name in zip(results.values(), ['img2.png', 'img0.png']):
        assert r['index'] == expected_probs[name].topk(2).indices.tolist()
        assert r['label'] == [names[i] for i in r['index']]
        assert r['prob'][0] >= r['prob'][1]


def test_inference_imagenet_labels(s18_release, s18_digits, tmp_path):
    ckpt, _ = s18_release
    _, _, images, _ = s18_digits
    rows = inference.main([str(images), '--checkpoint', str(ckpt), '--img-size', '32', '--topk', '5', '-j', '0',
                           '--include-index', '--results-dir', str(tmp_path), '--results-separate-col',
                           '--no-console-results'])
    info = ImageNetInfo()
    for r in rows:
        assert all(0 <= i < 1000 for i in r['index'])
        assert r['label'] == [info.index_to_description(i) for i in r['index']]
    with open(tmp_path / 'dfformer_s18-32.csv', newline='') as f:
        header = next(csv.reader(f))
    assert header == ['filename'] + [f'{c}_{i}' for c in ('index', 'label', 'prob') for i in range(5)]
    to_name = inference.label_mapper('name', 1000, None)  # --label-type name: the WordNet ids
    assert [to_name(i) for i in (0, 1, 999)] == ['n01440764', 'n01443537', 'n15075141']
    to_detailed = inference.label_mapper('detailed', 1000, None)
    assert to_detailed(1) == info.index_to_description(1, detailed=True) != info.index_to_description(1)


def test_inference_bad_input_one_line(s18_digits, tmp_path, capsys):
    _, ckpt, images, _ = s18_digits
    common = ['--checkpoint', str(ckpt), '-j', '0', '--results-dir', str(tmp_path), '--no-console-results']
    err = run_cli_error(inference.main, [str(tmp_path / 'missing')] + common, capsys)
    assert 'missing: no such folder or file' in err
    (tmp_path / 'empty').mkdir()
    (tmp_path / 'empty' / 'readme.txt').write_text('x')
    assert 'holds no images' in run_cli_error(inference.main, [str(tmp_path / 'empty')] + common, capsys)
    listing = tmp_path / 'list.txt'
    listing.write_text('img0.png\nnope.png\n')
    shutil.copy(images / 'img0.png', tmp_path / 'img0.png')
    assert 'line 2: nope.png: no such image file' in run_cli_error(inference.main, [str(listing)] + common, capsys)
    tiny = tmp_path / 'tiny.pth'
    torch.save(_tiny_state(0), tiny)
    err = run_cli_error(inference.main, [str(images), '--checkpoint', str(tiny), '-j', '0',
                                         '--results-dir', str(tmp_path)], capsys)
    assert 'does not fit DFFormer' in err and 'of another shape' in err
    err = run_cli_error(inference.main, [str(images), '--results-dir', str(tmp_path)], capsys)
    assert 'no weights: pass --checkpoint FILE' in err
    err = run_cli_error(inference.main, [str(images), '--label-type', 'name'] + common, capsys)
    assert 'class names are known only for 1000-class' in err
    assert not list(tmp_path.glob('*.csv'))  # nothing written


def test_inference_unreadable_image_command_line(s18_digits, tmp_path):
    """The real command line, images read in a DataLoader worker: the readable images are
    predicted and their results written, each unreadable one is named on one line of stderr
    (and nowhere else), exit code 2, no traceback."""
    _, ckpt, images, expected_probs = s18_digits
    folder = tmp_path / 'images'
    shutil.copytree(images, folder)
    (folder / 'broken.jpg').write_bytes(b'\xff\xd8\xff\xe0 not really a jpeg')
    (folder / 'sub' / 'empty.png').write_bytes(b'')
    r = run_script('inference.py', folder, '--checkpoint', ckpt, '-j', '1', '-b', '2', '--results-dir',
                   tmp_path / 'res', '--results-format', 'json', '--no-console-results')
    assert r.returncode == 2, r.stderr
    assert 'Traceback' not in r.stderr
    errors = [line for line in r.stderr.splitlines() if 'error' in line.lower()]
    assert [e.split(': unreadable image')[0] for e in errors] == [
        f'inference.py: error: {folder / "broken.jpg"}', f'inference.py: error: {folder / "sub" / "empty.png"}']
    assert all(e.endswith('; remove or replace the file') for e in errors), errors
    assert r.stderr.strip().splitlines()[-2:] == errors
    results = json.loads((tmp_path / 'res' / 'dfformer_s18-32.json').read_text())
    assert sorted(results) == sorted(IMAGES)
    for name in IMAGES:
        assert results[name]['prob'] == pytest.approx(expected_probs[name].max().item(), abs=1e-5)


def test_inference_no_readable_image(s18_digits, tmp_path, capsys):
    """Not one image readable: its one line, and no results file."""
    _, ckpt, _, _ = s18_digits
    (tmp_path / 'images').mkdir()
    (tmp_path / 'images' / 'broken.png').write_bytes(b'not a png')
    err = run_cli_error(inference.main, [str(tmp_path / 'images'), '--checkpoint', str(ckpt), '-j', '0',
                                         '--results-dir', str(tmp_path / 'res')], capsys)
    assert f'error: {tmp_path / "images" / "broken.png"}: unreadable image (cannot identify' in err
    assert not (tmp_path / 'res').exists()


# ----------------------------------------------------------------------------------------------
# tools/avg_checkpoints.py

def test_average_best_n_by_metric(run_dir, tmp_path):
    out = tmp_path / 'avg.pth'
    _, digest = avg_checkpoints.main(['--input', str(run_dir), '-n', '2', '--output', str(out)])
    averaged = torch.load(out, weights_only=True)
    _assert_same(averaged, _mean([run_dir / 'checkpoint-2.pth.tar', run_dir / 'checkpoint-3.pth.tar']))
    assert digest == sha256(out)
    assert not any(k.startswith('module.') for k in averaged)
    # model_best / last are copies of checkpoint-2 / -4: with a filter matching them, counted once
    out2 = tmp_path / 'avg2.safetensors'
    avg_checkpoints.main(['--input', str(run_dir), '--filter', '*.pth.tar', '-n', '3', '--output', str(out2)])
    from safetensors.torch import load_file
    _assert_same(load_file(out2), _mean([run_dir / f'checkpoint-{e}.pth.tar' for e in (2, 3, 1)]))


def test_average_ema_newest_and_loss_metric(run_dir, tmp_path):
    out = tmp_path / 'ema.pth'
    avg_checkpoints.main(['--input', str(run_dir), '-n', '3', '--use-ema', '--output', str(out)])
    _assert_same(torch.load(out, weights_only=True),
                 _mean([run_dir / f'checkpoint-{e}.pth.tar' for e in (2, 3, 1)], ema=True))
    out = tmp_path / 'newest.pth'
    avg_checkpoints.main(['--input', str(run_dir), '-n', '2', '--no-sort', '--output', str(out)])
    _assert_same(torch.load(out, weights_only=True), _mean([run_dir / f'checkpoint-{e}.pth.tar' for e in (4, 3)]))
    loss_run = tmp_path / 'loss_run'
    loss_run.mkdir()
    for epoch, loss in zip((1, 2, 3), (0.5, 0.2, 0.9)):  # --eval-metric loss: lower is better
        torch.save(_train_checkpoint(epoch, loss, seed=epoch, eval_metric='loss'),
                   loss_run / f'checkpoint-{epoch}.pth.tar')
    out = tmp_path / 'loss.pth'
    avg_checkpoints.main(['--input', str(loss_run), '-n', '2', '--output', str(out)])
    _assert_same(torch.load(out, weights_only=True), _mean([loss_run / f'checkpoint-{e}.pth.tar' for e in (2, 1)]))


def test_average_errors(run_dir, tmp_path, capsys):
    no_ema = tmp_path / 'no_ema'
    no_ema.mkdir()
    ckpt = _train_checkpoint(1, 1.0, seed=1)
    del ckpt['state_dict_ema']
    torch.save(ckpt, no_ema / 'checkpoint-1.pth.tar')
    err = run_cli_error(avg_checkpoints.main, ['--input', str(no_ema), '--use-ema', '--output',
                                               str(tmp_path / 'x.pth')], capsys)
    assert 'has no EMA weights (state_dict_ema)' in err
    other = tmp_path / 'other'
    other.mkdir()
    torch.save(_train_checkpoint(1, 1.0, seed=1), other / 'checkpoint-1.pth.tar')
    torch.save({**_train_checkpoint(2, 2.0, seed=2), 'state_dict': timm.create_model(
        'dfformer_s18', num_classes=10, depths=(1, 1, 1, 1), dims=(16, 32, 48, 80)).state_dict()},
        other / 'checkpoint-2.pth.tar')
    assert 'average checkpoints of one model' in run_cli_error(
        avg_checkpoints.main, ['--input', str(other), '--output', str(tmp_path / 'x.pth')], capsys)
    assert 'holds no files matching' in run_cli_error(
        avg_checkpoints.main, ['--input', str(tmp_path), '--output', str(tmp_path / 'x.pth')], capsys)
    (tmp_path / 'exists.pth').write_bytes(b'keep')
    assert 'already exists' in run_cli_error(
        avg_checkpoints.main, ['--input', str(run_dir), '--output', str(tmp_path / 'exists.pth')], capsys)
    assert (tmp_path / 'exists.pth').read_bytes() == b'keep'
    assert not (tmp_path / 'x.pth').exists()


# ----------------------------------------------------------------------------------------------
# tools/clean_checkpoint.py

def test_clean_checkpoint(run_dir, tmp_path, capsys):
    src = run_dir / 'checkpoint-2.pth.tar'  # saved with 'module.' prefixes, optimizer, args, EMA
    final, digest = clean_checkpoint.main(['--checkpoint', str(src), '--output', str(tmp_path / 'dfformer.pth')])
    assert os.path.basename(final) == f'dfformer-{digest[:8]}.pth' and digest == sha256(final)
    assert f'SHA256: {digest}' in capsys.readouterr().out
    assert not glob.glob(str(tmp_path / '*.tmp'))
    cleaned = torch.load(final, weights_only=True)
    assert isinstance(cleaned, dict) and all(isinstance(v, torch.Tensor) for v in cleaned.values())
    assert not any(k.startswith('module.') for k in cleaned)
    _assert_same(cleaned, _weights(src))
    model = models.DFFormer(**TINY)
    models.load_checkpoint(model, final)  # strict
    # EMA weights, safetensors by extension, --no-hash keeps the name
    final, digest = clean_checkpoint.main(['--checkpoint', str(src), '--use-ema', '--no-hash',
                                           '--output', str(tmp_path / 'ema.safetensors')])
    assert final == str(tmp_path / 'ema.safetensors') and digest == sha256(final)
    from safetensors.torch import load_file
    _assert_same(load_file(final), _weights(src, ema=True))
    final, _ = clean_checkpoint.main(['--checkpoint', str(src), '--safetensors', '--output', str(tmp_path / 'w.pth')])
    assert re.fullmatch(r'w-[0-9a-f]{8}\.safetensors', os.path.basename(final))


def test_clean_checkpoint_errors(tmp_path, capsys):
    ckpt = _train_checkpoint(1, 1.0, seed=1)
    del ckpt['state_dict_ema']
    torch.save(ckpt, tmp_path / 'last.pth.tar')
    err = run_cli_error(clean_checkpoint.main, ['--checkpoint', str(tmp_path / 'last.pth.tar'), '--use-ema',
                                                '--output', str(tmp_path / 'out.pth')], capsys)
    assert 'has no EMA weights' in err
    (tmp_path / 'bad.pth').write_bytes(b'PK\x03\x04 truncated')
    err = run_cli_error(clean_checkpoint.main, ['--checkpoint', str(tmp_path / 'bad.pth')], capsys)
    assert 'bad.pth: cannot read checkpoint (truncated or damaged' in err
    assert sorted(os.listdir(tmp_path)) == ['bad.pth', 'last.pth.tar']


# ----------------------------------------------------------------------------------------------
# hubconf.py

def test_hubconf_entry_points():
    hub = load_script('hubconf.py')
    assert hub.dependencies == ['torch', 'timm']
    entries = sorted(n for n in dir(hub) if callable(getattr(hub, n)) and not n.startswith('_'))
    assert entries == sorted(RELEASED)


@pytest.mark.parametrize('name', RELEASED)
def test_torch_hub_load_builds_the_architecture(name):
    model = torch.hub.load(ROOT, name, source='local', pretrained=False, trust_repo=True, verbose=False,
                           depths=(1, 1, 1, 1), dims=(16, 32, 48, 64), num_classes=7)
    assert isinstance(model, models.DFFormer) and model.pretrained_cfg['architecture'] == name
    assert model.num_classes == 7
    mixers = [type(stage[0].token_mixer) for stage in model.stages]
    expected = [SepConv, SepConv] if name.startswith('cdfformer') else [DynamicFilter, DynamicFilter]
    assert mixers == expected + [DynamicFilter, DynamicFilter]


def test_torch_hub_full_model_has_the_authors_layout():
    model = torch.hub.load(ROOT, 'cdfformer_s18', source='local', pretrained=False, trust_repo=True, verbose=False)
    reference = json.load(open(os.path.join(ROOT, 'tests', 'fixtures', 'full_models.json')))['cdfformer_s18']
    tensors = reference['tensors']
    tensors = json.loads(tensors.replace("'", '"')) if isinstance(tensors, str) else tensors
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == tensors
    assert sum(p.numel() for p in model.parameters()) == int(reference['num_params'])


# ----------------------------------------------------------------------------------------------
# tools/export_hf.py

def test_export_hf_round_trip(s18_release, tmp_path):
    ckpt, state_dict = s18_release
    folder = tmp_path / 'hf' / 'dfformer_s18.in1k'
    export_hf.main(['--model', 'dfformer_s18', '--checkpoint', str(ckpt), '--output-dir', str(folder)])
    assert sorted(os.listdir(folder)) == ['README.md', 'config.json', 'model.safetensors']
    assert not os.path.exists(str(folder) + '.tmp')
    config = json.loads((folder / 'config.json').read_text())
    assert config['architecture'] == 'dfformer_s18' and config['num_classes'] == 1000
    assert config['pretrained_cfg']['license'] == 'mit'
    assert 'url' not in config['pretrained_cfg'] and 'file' not in config['pretrained_cfg']
    card = (folder / 'README.md').read_text()
    assert card.startswith('---\n') and '\nlicense: mit\n' in card and '\nlibrary_name: timm\n' in card
    assert '- imagenet-1k' in card and 'Params (M): 30.3' in card and 'GMACs: 3.93' in card
    assert 'https://arxiv.org/abs/2303.03932' in card and 'Tatsunami, Yuki and Taki, Masato' in card
    assert "timm.create_model('hf-hub:<user>/dfformer_s18.in1k', pretrained=True)" in card
    from_dir = timm.create_model(f'local-dir:{folder}', pretrained=True)
    from_file = timm.create_model('dfformer_s18', pretrained=True,
                                  pretrained_cfg_overlay=dict(file=str(folder / 'model.safetensors')))
    _assert_same(from_dir.state_dict(), state_dict)
    _assert_same(from_file.state_dict(), state_dict)
    assert from_dir.pretrained_cfg['input_size'] == [3, 224, 224] or tuple(
        from_dir.pretrained_cfg['input_size']) == (3, 224, 224)


def test_export_hf_training_checkpoint_with_labels(s18_digits, tmp_path, capsys):
    _, ckpt, _, _ = s18_digits
    class_map = tmp_path / 'classes.txt'
    class_map.write_text('\n'.join(f'digit {i}' for i in range(10)))
    folder = tmp_path / 'digits'
    export_hf.main(['--model', 'dfformer_s18', '--checkpoint', str(ckpt), '--output-dir', str(folder),
                    '--img-size', '32', '--class-map', str(class_map), '--dataset', 'digits'])
    config = json.loads((folder / 'config.json').read_text())
    assert config['num_classes'] == 10 and config['label_names'] == [f'digit {i}' for i in range(10)]
    assert config['model_args']['img_size'] == [32, 32]
    assert tuple(config['pretrained_cfg']['input_size']) == (3, 32, 32)
    from safetensors.torch import load_file
    _assert_same(load_file(folder / 'model.safetensors'), _weights(ckpt))
    assert '- digits' in (folder / 'README.md').read_text()
    err = run_cli_error(export_hf.main, ['--model', 'dfformer_s18', '--checkpoint', str(ckpt),
                                         '--output-dir', str(folder)], capsys)
    assert 'already exists' in err
    err = run_cli_error(export_hf.main, ['--model', 'cdfformer_s18', '--checkpoint', str(ckpt),
                                         '--output-dir', str(tmp_path / 'x')], capsys)
    assert 'is a checkpoint of dfformer_s18' in err and not (tmp_path / 'x').exists()


# ----------------------------------------------------------------------------------------------
# OpenMMLab model-zoo files

ZOO = {  # folder: (metafile schema, config suffix)
    'segmentation/configs/fpn': ('mmseg', '_fpn'),
    'detection/configs/retinanet': ('mmdet', '_retinanet'),
    'detection/configs/mask_rcnn': ('mmdet', '_mask_rcnn'),
}
# Results a metafile may state: the paper's numbers, {model name: {metric: value}}. None could be
# read from the paper here, so no metafile states any.
PAPER_RESULTS = {}
BIBTEX_ID = '@inproceedings{tatsunami2024fft'


def _metafile(folder):
    with open(os.path.join(ROOT, folder, 'metafile.yaml')) as f:
        return yaml.safe_load(f)


@pytest.mark.parametrize('folder', sorted(ZOO))
def test_metafile(folder):
    schema, suffix = ZOO[folder]
    meta = _metafile(folder)
    collections = {c['Name']: c for c in meta['Collections']}
    for c in collections.values():
        assert c['Paper']['URL'] == 'https://arxiv.org/abs/2303.03932'
        assert os.path.isfile(os.path.join(ROOT, c['README']))
        assert c['Metadata']['Training Data']
    configs = sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, folder, '*.py')))
    assert len(configs) == 8
    entries = meta['Models']
    assert sorted(m['Config'] for m in entries) == configs  # every config exactly once
    names = [m['Name'] for m in entries]
    assert len(set(names)) == len(names)
    for m in entries:
        assert {'Name', 'In Collection', 'Config', 'Metadata'} <= set(m)
        assert m['In Collection'] in collections
        assert os.path.isfile(os.path.join(ROOT, m['Config']))
        assert m['Name'] == os.path.splitext(os.path.basename(m['Config']))[0]
        assert m['Name'].endswith(suffix)
        md = m['Metadata']
        text = open(os.path.join(ROOT, m['Config'])).read()
        assert re.search(r"arch='(\w+)'", text).group(1) == md['Backbone'] in models.MODEL_ARCHS
        assert md['Training Resources'] == '8x GPUs'
        if schema == 'mmseg':
            assert md['Training Data'] == 'ADE20K' and md['Crop Size'] == '(512,512)'
            assert md['Lr schd'] == 40000 and md['Batch Size'] == 32
        else:
            assert md['Epochs'] == 12 and md['Batch Size'] == 16
        assert 'Weights' not in m  # none released
        results = m.get('Results')
        if results is not None:  # only the paper's numbers
            for r in results if isinstance(results, list) else [results]:
                assert r['Metrics'] == PAPER_RESULTS.get(m['Name']), m['Name']


def test_metafile_names_unique_across_folders():
    names = [m['Name'] for folder in ZOO for m in _metafile(folder)['Models']]
    assert len(set(names)) == len(names) == 24


@pytest.mark.parametrize('folder', ['segmentation/configs/fpn', 'detection/configs/retinanet'])
def test_metafile_matches_the_resolved_config(folder):
    """The recipe a metafile states is the one the config resolves to (one config per folder)."""
    from mmengine.config import Config
    schema, _ = ZOO[folder]
    entry = _metafile(folder)['Models'][0]
    cfg = Config.fromfile(os.path.join(ROOT, entry['Config']))
    md = entry['Metadata']
    assert cfg.model.backbone.arch == md['Backbone']
    assert cfg.train_dataloader.batch_size * 8 == md['Batch Size']  # 8 GPUs
    if schema == 'mmseg':
        assert cfg.train_cfg.max_iters == md['Lr schd']
        assert str(tuple(cfg.crop_size)).replace(' ', '') == md['Crop Size']
    else:
        assert cfg.train_cfg.max_epochs == md['Epochs']


@pytest.mark.parametrize('folder', sorted(ZOO))
def test_model_zoo_readme(folder):
    text = open(os.path.join(ROOT, folder, 'README.md')).read()
    assert text.startswith('# ')
    assert '> [FFT-based Dynamic Token Mixer for Vision](https://arxiv.org/abs/2303.03932)' in text
    assert BIBTEX_ID in text and 'Tatsunami, Yuki and Taki, Masato' in text and 'AAAI' in text
    tool = folder.split('/')[0]
    for config in sorted(glob.glob(os.path.join(ROOT, folder, '*.py'))):
        rel = os.path.relpath(config, ROOT)
        stem = os.path.splitext(os.path.basename(config))[0]
        assert f'[config]({stem}.py)' in text
        assert f'bash {tool}/tools/dist_train.sh {rel} 8' in text
        assert f'bash {tool}/tools/dist_test.sh {rel} work_dir/{stem}/' in text
    # the results table: every metric cell is '-' (no number that is not the paper's)
    lines = [line for line in text.splitlines() if line.startswith('| ')]
    header = next(line for line in lines if 'config' in line and 'download' in line)
    cols = [c.strip() for c in header.strip('|').split('|')]
    metric_cols = [i for i, c in enumerate(cols) if c in (
        'mIoU', 'mIoU(ms+flip)', 'box AP', 'mask AP', 'Params (M)', 'Mem (GB)', 'Inf time (fps)', 'download')]
    assert len(metric_cols) >= 5
    rows = [line for line in lines if '[config](' in line]
    assert len(rows) == 8
    for row in rows:
        cells = [c.strip() for c in row.strip('|').split('|')]
        assert all(cells[i] == '-' for i in metric_cols), row

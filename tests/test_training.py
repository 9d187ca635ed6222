"""train.py / validate.py / distributed_train.sh end to end on tiny data, on CPU."""
import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import yaml
from conftest import ROOT, load_script
from PIL import Image

from engine.data import DataError, DigitsDataset
from models import CheckpointError

train_script = load_script('train.py')
validate_script = load_script('validate.py')

PY = sys.executable
FAST = ['-j', '0', '--img-size', '32', '-b', '8', '--max-steps-per-epoch', '2', '--log-interval', '1']
ENV = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONWARNINGS': 'ignore'}

# The authors' published command (the launcher's arguments dropped), then our tiny-run overrides.
PUBLISHED = ('--model dfformer_s18 -b 128 -j 8 --opt adamw --epochs 300 --sched cosine --native-amp '
             '--img-size 224 --drop-path 0.2 --lr 1e-3 --weight-decay 0.05 --aa rand-m9-mstd0.5-inc1 '
             '--smoothing 0.1 --mixup 0.8 --cutmix 1.0 --reprob 0.25 --warmup-lr 1e-6 --warmup-epochs 20 '
             '--experiment DFFormer --task-name dfformer_s18').split()


@pytest.fixture(scope='module')
def image_folder(tmp_path_factory):
    """An ImageNet-style folder: train/ and val/ with 3 classes of small PNGs."""
    root = tmp_path_factory.mktemp('imagenet')
    rng = np.random.RandomState(0)
    for split, count in (('train', 6), ('val', 2)):
        for c in range(3):
            folder = root / split / f'n0000{c}'
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = (rng.rand(40, 48, 3) * 80 + c * 80).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f'{i}.png')
    return root


def _summary(path):
    with open(path, newline='') as f:
        return list(csv.DictReader(f))


def test_published_command_runs_with_every_flag(image_folder, tmp_path):
    argv = [str(image_folder)] + PUBLISHED + ['--output', str(tmp_path), '--epochs', '2', '--warmup-epochs', '1',
                                              '--cooldown-epochs', '0'] + FAST
    train_script.main(argv)
    out = tmp_path / 'DFFormer'
    saved = yaml.safe_load((out / 'args.yaml').read_text())
    expected = dict(model='dfformer_s18', opt='adamw', sched='cosine', amp=True, drop_path=0.2, lr=1e-3,
                    weight_decay=0.05, aa='rand-m9-mstd0.5-inc1', smoothing=0.1, mixup=0.8, cutmix=1.0,
                    reprob=0.25, warmup_lr=1e-6, experiment='DFFormer', task_name='dfformer_s18', num_classes=3)
    assert {k: saved[k] for k in expected} == expected
    rows = _summary(out / 'summary.csv')
    assert [int(r['epoch']) for r in rows] == [0, 1]
    assert {'train_loss', 'eval_loss', 'eval_top1', 'eval_top5', 'lr'} <= set(rows[0])
    assert float(rows[0]['lr']) < 1e-3  # still warming up from 1e-6
    for name in ('last.pth.tar', 'model_best.pth.tar', 'checkpoint-0.pth.tar', 'checkpoint-1.pth.tar'):
        checkpoint = torch.load(out / name, weights_only=True)  # plain types only
        assert checkpoint['args']['model'] == 'dfformer_s18'
    assert not list(out.glob('*.tmp'))


def test_train_then_validate_on_builtin_digits(tmp_path):
    train_script.main(['--dataset', 'digits', '--model', 'cdfformer_s18', '--opt', 'adamw', '--lr', '1e-3',
                       '--epochs', '1', '--warmup-epochs', '0', '--cooldown-epochs', '0', '--model-ema',
                       '--output', str(tmp_path), '--experiment', 'digits'] + FAST)
    out = tmp_path / 'digits'
    assert torch.load(out / 'last.pth.tar', weights_only=True)['state_dict']['head.fc2.weight'].shape[0] == 10
    results_file = tmp_path / 'results.json'
    results = validate_script.main(['--dataset', 'digits', '--model', 'cdfformer_s18', '--img-size', '32', '-j', '0',
                                    '--checkpoint', str(out / 'model_best.pth.tar'), '--use-ema',
                                    '--results-file', str(results_file)])
    saved = json.loads(results_file.read_text())
    assert saved['top1'] == results[0]['top1'] and 0 <= saved['top1'] <= 100
    assert saved['checkpoint'] == str(out / 'model_best.pth.tar')
    assert {'top1', 'top5', 'param_count', 'img_size'} <= set(saved) and saved['img_size'] == 32
    # a folder of checkpoints, CSV results
    results = validate_script.main(['--dataset', 'digits', '--model', 'cdfformer_s18', '--img-size', '32', '-j', '0',
                                    '--checkpoint', str(out), '--results-file', str(tmp_path / 'r.csv'),
                                    '--results-format', 'csv'])
    assert len(_summary(tmp_path / 'r.csv')) == len(results) >= 3
    assert not list(out.glob('*.tmp')) and not list(tmp_path.glob('*.tmp'))


def test_validate_authors_plain_state_dict(tmp_path):
    path = tmp_path / 'released.pth'
    state = __import__('timm').create_model('dfformer_s18', num_classes=10).state_dict()
    # a classifier that always answers 3: top-1 is then the share of 3s, whatever the features
    state['head.fc2.weight'].zero_()
    state['head.fc2.bias'].zero_()
    state['head.fc2.bias'][3] = 10.
    torch.save(state, path)
    results = validate_script.main(['--dataset', 'digits', '--model', 'dfformer_s18', '--img-size', '32', '-j', '0',
                                    '--checkpoint', str(path), '-b', '360'])
    share_of_threes = 100 * float((DigitsDataset('validation').targets == 3).mean())
    assert results[0]['checkpoint'] == str(path)
    assert results[0]['top1'] == pytest.approx(share_of_threes, abs=1e-3)  # the file's weights were evaluated
    assert results[0]['param_count'] == 28.24  # dfformer_s18 with a 10-class head


def test_kill_then_resume_keeps_each_epoch_once(tmp_path):
    argv = [PY, os.path.join(ROOT, 'train.py'), '--dataset', 'digits', '--model', 'dfformer_s18', '--opt', 'adamw',
            '--lr', '1e-3', '--epochs', '4', '--warmup-epochs', '0', '--cooldown-epochs', '0',
            '--output', str(tmp_path), '--experiment', 'run'] + FAST
    out = tmp_path / 'run'
    proc = subprocess.Popen(argv, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (out / 'checkpoint-1.pth.tar').exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (out / 'last.pth.tar').exists()
    done = torch.load(out / 'last.pth.tar', weights_only=True)['epoch']
    assert done < 3, 'the run was killed before it finished'
    subprocess.run(argv + ['--resume', str(out / 'last.pth.tar')], env=ENV, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)
    assert [int(r['epoch']) for r in _summary(out / 'summary.csv')] == [0, 1, 2, 3]
    assert torch.load(out / 'last.pth.tar', weights_only=True)['epoch'] == 3


def test_two_process_gloo_training(tmp_path):
    cmd = ['bash', os.path.join(ROOT, 'distributed_train.sh'), '2', '--dataset', 'digits', '--model', 'dfformer_s18',
           '--epochs', '1', '--warmup-epochs', '0', '--cooldown-epochs', '0', '--output', str(tmp_path),
           '--experiment', 'ddp'] + FAST
    env = {**ENV, 'PYTHON': PY, 'MASTER_PORT': str(29500 + os.getpid() % 1000)}
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert [int(r['epoch']) for r in _summary(tmp_path / 'ddp' / 'summary.csv')] == [0]
    # 2 processes ran, each on its half of the 1,437 training digits: 719 // 8 = 89 batches
    # (one process would have 1437 // 8 = 179)
    assert 'of 89 per process, world size 2' in result.stderr + result.stdout, result.stderr[-3000:]
    assert (tmp_path / 'ddp' / 'last.pth.tar').exists()


def _cli_error(script, argv):
    result = subprocess.run([PY, os.path.join(ROOT, script)] + argv, env=ENV, capture_output=True, text=True,
                            timeout=300)
    lines = [line for line in result.stderr.strip().splitlines() if line]
    return result.returncode, lines[-1] if lines else ''


def test_cli_errors_are_one_line(tmp_path):
    code, line = _cli_error('train.py', [str(tmp_path / 'missing'), '--model', 'dfformer_s18'])
    assert code == 2 and 'does not exist' in line and 'digits' in line
    code, line = _cli_error('train.py', ['--dataset', 'digits', '--model', 'dfformer_s99'])
    assert code == 2 and "unknown model 'dfformer_s99'" in line


def test_bad_data_errors(image_folder, tmp_path):
    with pytest.raises(DataError, match='no data directory'):
        train_script.main(['--model', 'dfformer_s18'] + FAST)
    empty = tmp_path / 'empty'
    (empty / 'train' / 'a').mkdir(parents=True)
    (empty / 'val' / 'a').mkdir(parents=True)
    with pytest.raises(DataError, match='class folder .* has no images'):
        train_script.main([str(empty), '--model', 'dfformer_s18'] + FAST)
    broken = tmp_path / 'broken'
    for split in ('train', 'val'):
        (broken / split / 'a').mkdir(parents=True)
        (broken / split / 'a' / 'x.png').write_bytes(b'not a png')
    with pytest.raises(DataError, match=r'x.png: unreadable image'):
        train_script.main([str(broken), '--model', 'dfformer_s18', '--output', str(tmp_path)] + FAST)


def test_checkpoint_of_another_architecture(tmp_path):
    path = tmp_path / 'cdf.pth'
    torch.save(__import__('timm').create_model('cdfformer_s18', num_classes=10).state_dict(), path)
    with pytest.raises(CheckpointError, match='does not fit'):
        train_script.main(['--dataset', 'digits', '--model', 'dfformer_s18', '--initial-checkpoint', str(path),
                           '--output', str(tmp_path)] + FAST)
    with pytest.raises(CheckpointError, match='does not fit'):
        validate_script.main(['--dataset', 'digits', '--model', 'dfformer_s18', '--checkpoint', str(path),
                              '-j', '0'])


def test_non_finite_loss_stops_without_checkpoint(tmp_path):
    with pytest.raises(train_script.NonFiniteLossError, match=r'at epoch 0 step \d+'):
        train_script.main(['--dataset', 'digits', '--model', 'dfformer_s18', '--opt', 'sgd', '--lr', '1e30',
                           '--warmup-epochs', '0', '--epochs', '1', '--smoothing', '0', '--output', str(tmp_path),
                           '--experiment', 'nan', '-j', '0', '--img-size', '32', '-b', '8',
                           '--max-steps-per-epoch', '20'])
    assert not list((tmp_path / 'nan').glob('*.pth.tar'))

"""train.py / validate.py / distributed_train.sh end to end on tiny data, on CPU."""
import csv
import json
import math
import os
import re
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


@pytest.fixture(scope='module')
def released_like(tmp_path_factory):
    """A file as the authors release weights: a plain state_dict of a 1000-class dfformer_s18 built
    for 224x224 px (random weights)."""
    path = tmp_path_factory.mktemp('released') / 'dfformer_s18.pth'
    torch.manual_seed(1)
    torch.save(__import__('timm').create_model('dfformer_s18').state_dict(), path)
    return path


def _stderr_lines(result):
    return [line for line in result.stderr.splitlines() if line.strip()]


def test_fine_tune_released_weights_on_own_folder(image_folder, released_like, tmp_path):
    """--pretrained-path fine-tunes released weights on a 3-class folder at 32 px: the classifier is
    re-initialised, the filters resized, every other tensor loaded, and the log's first lines say
    the plan; --initial-checkpoint with that file is one line pointing at --pretrained-path."""
    common = [PY, os.path.join(ROOT, 'train.py'), str(image_folder), '--model', 'dfformer_s18', '--img-size', '32',
              '-b', '8', '-j', '0', '--epochs', '1', '--cooldown-epochs', '0', '--output', str(tmp_path)]
    runs = [subprocess.Popen(common + argv, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for argv in (['--pretrained-path', str(released_like), '--experiment', 'ft'],
                         ['--initial-checkpoint', str(released_like), '--experiment', 'as_is'])]
    outputs = [p.communicate(timeout=600) for p in runs]
    fine_tune, as_is = [subprocess.CompletedProcess(p.args, p.returncode, *out) for p, out in zip(runs, outputs)]

    assert fine_tune.returncode == 0, fine_tune.stderr[-3000:]
    lines = _stderr_lines(fine_tune)
    assert lines[:2] == [
        'Plan: dfformer_s18 for 1 epoch, optimizer sgd, lr 0.05 (cosine schedule, 3 warmup epochs from 0.0001, '
        'min 1e-05), weight decay 2e-05',
        f'Batch 8 per process x 1 process, 32x32 px, 3 classes; weights: {released_like} (--pretrained-path) with its '
        '1000-class classifier re-initialised for 3 classes'], lines[:3]
    [row] = _summary(tmp_path / 'ft' / 'summary.csv')
    assert np.isfinite(float(row['train_loss']))
    trained = torch.load(tmp_path / 'ft' / 'last.pth.tar', weights_only=True)['state_dict']
    released = torch.load(released_like, weights_only=True)
    assert trained['head.fc2.weight'].shape[0] == 3
    # filters resized from 224 px (56x29 at stage 0) to 32 px (8x5)
    filters = 'stages.0.0.token_mixer.complex_weights'
    assert released[filters].shape[:2] == (56, 29) and trained[filters].shape[:2] == (8, 5)
    # the rest loaded: after 1 epoch (2 steps at the warmup lr 1e-4) still next to the file's weights
    for key in ('downsample_layers.0.conv.weight', 'stages.3.2.mlp.fc2.weight', 'head.fc1.weight'):
        assert torch.allclose(trained[key], released[key], atol=1e-3), key

    assert as_is.returncode == 2, as_is.stderr[-3000:]
    assert 'Traceback' not in as_is.stderr
    assert _stderr_lines(as_is) == [
        f'train.py: error: --initial-checkpoint {released_like} has 1000 classes, this run 3: to fine-tune on another '
        f'class count, use --pretrained-path {released_like}']


def test_pretrained_path_without_released_weights_and_of_another_model(released_like, tmp_path):
    """--pretrained-path loads into a model with no released weights (gfformer_s18, here with
    --pretrained too, as timm's train.py takes it); weights of another model are a one-line error,
    also where timm loads non-strictly (another class count) and would leave layers at their init."""
    from engine.weights import create_model
    path = tmp_path / 'gfformer_s18.pth'
    torch.save(__import__('timm').create_model('gfformer_s18', img_size=64).state_dict(), path)
    args = train_script.parse_args(['--dataset', 'digits', '--model', 'gfformer_s18', '--pretrained',
                                    '--pretrained-path', str(path), '--output', str(tmp_path)])
    model = create_model(args, num_classes=3, img_size=32)
    stem = 'downsample_layers.0.conv.weight'
    assert torch.equal(model.state_dict()[stem], torch.load(path, weights_only=True)[stem])
    args.model, args.pretrained_path = 'cdfformer_s18', str(released_like)
    for num_classes in (3, 1000):  # its classifier re-initialised (a non-strict load) / kept (a strict one)
        with pytest.raises(CheckpointError, match=r'^--pretrained-path \S+ does not fit cdfformer_s18: 6 missing '
                           r'\(stages.0.0.token_mixer.dwconv.weight, .*\); 30 unexpected'):
            create_model(args, num_classes=num_classes, img_size=32)


def test_plan_states_the_authors_defaults(caplog):
    """The first lines of a run with the defaults say the 10 cooldown epochs, SGD and lr 0.05."""
    args = train_script.parse_args(['--dataset', 'digits', '--epochs', '1', '--pretrained'])
    args.world_size, args.num_classes = 2, 10
    with caplog.at_level('INFO', logger='train'):
        train_script.log_plan(args, None)
    assert caplog.messages == [
        'Plan: dfformer_s18 for 11 epochs (--epochs 1 plus --cooldown-epochs 10), optimizer sgd, lr 0.05 (cosine '
        'schedule, 3 warmup epochs from 0.0001, min 1e-05), weight decay 2e-05',
        'Batch 128 per process x 2 processes, 224x224 px, 10 classes; weights: the released weights (--pretrained) '
        'with its 1000-class classifier re-initialised for 10 classes']


def test_short_epochs_log_often_and_summary_lr_is_the_epochs(tmp_path):
    """An epoch shorter than 4 --log-interval's logs at least each quarter; the checkpoint list is
    not logged; summary.csv's lr is the rate each epoch trained at (epoch 0: the warmup lr)."""
    result = subprocess.run(
        [PY, os.path.join(ROOT, 'train.py'), '--dataset', 'digits', '--model', 'dfformer_s18', '--img-size', '16',
         '-b', '8', '-vb', '400', '-j', '0', '--max-steps-per-epoch', '4', '--epochs', '2', '--cooldown-epochs', '0',
         '--opt', 'adamw', '--lr', '1e-3', '--warmup-epochs', '1', '--warmup-lr', '1e-4', '--checkpoint-hist', '1',
         '--output', str(tmp_path), '--experiment', 'run'], env=ENV, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    logged = [int(m.group(1)) for m in re.finditer(r'^Train: 0 \[\s*(\d+)/4 ', result.stderr, re.MULTILINE)]
    assert logged == [0, 1, 2, 3], result.stderr[-3000:]  # each quarter: the default --log-interval is 50
    assert 'Current checkpoints' not in result.stderr
    # cosine from 1e-3 to 1e-5 over 2 epochs, the 1st a warmup at 1e-4: epoch 1 is halfway down
    expected = [1e-4, 1e-5 + (1e-3 - 1e-5) * 0.5 * (1 + math.cos(math.pi * 1 / 2))]
    assert [float(r['lr']) for r in _summary(tmp_path / 'run' / 'summary.csv')] == pytest.approx(expected)
    kept = sorted(p.name for p in (tmp_path / 'run').glob('*.pth.tar'))  # --checkpoint-hist 1: the best epoch's
    assert kept[0] in ('checkpoint-0.pth.tar', 'checkpoint-1.pth.tar') and kept[1:] == [
        'last.pth.tar', 'model_best.pth.tar'], kept


OWN_CODE = (os.path.join(ROOT, 'train.py'), os.path.join(ROOT, 'engine') + os.sep)


def _one_process_group(args):
    """setup_device for a distributed run of 1 process (gloo, in this process): the training loop's
    distributed code paths (the stop flag's all-reduce, the checkpoint's gather) without torchrun."""
    torch.distributed.init_process_group('gloo', store=torch.distributed.HashStore(), rank=0, world_size=1)
    args.distributed, args.world_size, args.rank, args.local_rank, args.prefetcher = True, 1, 0, 0, False
    return torch.device('cpu')


@pytest.mark.filterwarnings('ignore:Grad strides do not match bucket view strides')  # (DDP, 16 px filters)
@pytest.mark.parametrize('distributed', [False, True])
def test_no_device_wait_in_a_step_but_at_its_log_line(tmp_path, monkeypatch, caplog, distributed):
    """The training loop reads nothing from the device in a step that logs nothing: no .item(),
    .tolist(), bool() / float() / int() of a tensor from train.py or engine/, and no blocking
    all-reduce from anywhere (the stop flag's is asynchronous, read a step later); a log step may."""
    loop = train_script.train_one_epoch.__code__
    waits = []  # (step, what)

    def in_loop(what, own_code_only=True):
        caller = sys._getframe(2)
        if own_code_only and not caller.f_code.co_filename.startswith(OWN_CODE):
            return
        frame = caller
        while frame is not None and frame.f_code is not loop:
            frame = frame.f_back
        if frame is not None and 'step' in frame.f_locals:  # (not the epoch's setup: the sampler's order)
            waits.append((frame.f_locals['step'], what))

    def counted(name):
        original = getattr(torch.Tensor, name)

        def wrapper(self, *a, **k):
            in_loop(name)
            return original(self, *a, **k)
        return wrapper

    for name in ('item', 'tolist', '__bool__', '__float__', '__int__'):
        monkeypatch.setattr(torch.Tensor, name, counted(name))
    all_reduce = torch.distributed.all_reduce

    def counted_all_reduce(*a, async_op=False, **k):
        if not async_op:
            in_loop('all_reduce', own_code_only=False)
        return all_reduce(*a, async_op=async_op, **k)
    monkeypatch.setattr(torch.distributed, 'all_reduce', counted_all_reduce)
    if distributed:
        monkeypatch.setattr(train_script, 'setup_device', _one_process_group)
    try:
        with caplog.at_level('INFO', logger='train'):
            train_script.main(['--dataset', 'digits', '--model', 'dfformer_s18', '--img-size', '16', '-b', '8',
                               '-vb', '400', '-j', '0', '--epochs', '1', '--warmup-epochs', '0', '--cooldown-epochs',
                               '0', '--max-steps-per-epoch', '12', '--log-interval', '3', '--output', str(tmp_path),
                               '--experiment', 'run'])
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    logged = {int(m[1]) for m in re.finditer(r'^Train: 0 \[\s*(\d+)/12 ', '\n'.join(caplog.messages), re.MULTILINE)}
    assert logged == {0, 3, 6, 9, 11}, caplog.messages
    unlogged = [w for w in waits if w[0] not in logged]
    assert not unlogged, f'device waits in steps without a log line (step, what): {unlogged}'
    assert {step for step, _ in waits} <= logged and waits  # (the log steps read the loss)
    summary = _summary(tmp_path / 'run' / 'summary.csv')
    assert len(summary) == 1 and math.isfinite(float(summary[0]['train_loss']))


@pytest.mark.parametrize('bad_step', [3, 5])
def test_non_finite_loss_names_its_step_and_no_checkpoint_has_it(tmp_path, monkeypatch, bad_step):
    """A NaN loss at step 3 (read at the log line of step 4) or 5 (no log line before the recovery
    checkpoint of step 5, which reads it first): the error names that step and the only checkpoint
    is step 2's, with finite weights."""
    from timm.loss import LabelSmoothingCrossEntropy
    calls = []

    class NanAtStep(LabelSmoothingCrossEntropy):
        def forward(self, x, target):
            loss = super().forward(x, target)
            calls.append(None)
            return loss * float('nan') if len(calls) == bad_step + 1 else loss

    monkeypatch.setattr(train_script, 'LabelSmoothingCrossEntropy', NanAtStep)
    with pytest.raises(train_script.NonFiniteLossError, match=rf'^loss is nan at epoch 0 step {bad_step}: lower'):
        train_script.main(['--dataset', 'digits', '--model', 'dfformer_s18', '--img-size', '16', '-b', '8', '-j', '0',
                           '--epochs', '1', '--warmup-epochs', '0', '--max-steps-per-epoch', '8', '--log-interval',
                           '2', '--recovery-interval', '3', '--output', str(tmp_path), '--experiment', 'nan'])
    saved = sorted(p.name for p in (tmp_path / 'nan').glob('*.pth.tar'))
    assert saved == ['recovery-0-2.pth.tar'], saved
    weights = torch.load(tmp_path / 'nan' / saved[0], weights_only=True)['state_dict']
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())


def test_torchcompile_trains(tmp_path, monkeypatch):
    """--torchcompile (inductor, CPU) trains 2 steps and evaluates: the real train.py on a DFFormer
    of one block per stage with each token mixer of the zoo (dfformer_s18's compile takes minutes)."""
    from models import DFFormer

    def tiny(args, flag, num_classes, drop_rate, drop_path_rate, img_size):
        return DFFormer(depths=(1, 1, 1, 1), dims=(16, 32, 48, 64), num_classes=num_classes, drop_rate=drop_rate,
                        drop_path_rate=drop_path_rate, img_size=img_size,
                        token_mixers=('sepconv', 'dynamic_filter', 'global_filter', 'dynamic_filter'))
    monkeypatch.setattr(train_script, 'create_timm_model', tiny)
    torch._dynamo.reset()
    try:
        train_script.main(['--dataset', 'digits', '--model', 'dfformer_s18', '--img-size', '32', '-b', '8', '-vb',
                           '400', '-j', '0', '--epochs', '1', '--warmup-epochs', '0', '--cooldown-epochs', '0',
                           '--max-steps-per-epoch', '2', '--torchcompile', '--output', str(tmp_path),
                           '--experiment', 'compiled'])
    finally:
        torch._dynamo.reset()
    [row] = _summary(tmp_path / 'compiled' / 'summary.csv')
    assert math.isfinite(float(row['train_loss'])) and float(row['eval_top1']) >= 0
    assert torch.load(tmp_path / 'compiled' / 'last.pth.tar', weights_only=True)['state_dict'][
        'head.fc2.weight'].shape[0] == 10  # (saved without torch.compile's wrapper)

"""Every bad input to train.py, validate.py and timm.create_model ends in one line naming what is
wrong (no traceback, exit code 2) before any work is done and without touching an existing run;
valid but unusual inputs (tiny images) work; a run leaves no temporary files behind.

The scripts run for real, as subprocesses (two at a time: each pays ~3 s of python + torch import).
"""
import concurrent.futures
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import timm
import torch
from conftest import ROOT, load_script
from PIL import Image

from engine.cli import one_line
from engine.data import DataError

train_script = load_script('train.py')
validate_script = load_script('validate.py')

ENV = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONWARNINGS': 'ignore'}
# A tiny run: 1 step of batch 8 at 16x16 px (a valid size below the 32 px of the model's stride),
# evaluation in one batch.
TINY = ['--img-size', '16', '-b', '8', '-vb', '400', '--max-steps-per-epoch', '1', '-j', '0', '--epochs', '1',
        '--warmup-epochs', '0', '--cooldown-epochs', '0', '--log-interval', '1', '--lr', '0.01']
DIGITS = ['--dataset', 'digits']
IS_ROOT = hasattr(os, 'geteuid') and os.geteuid() == 0

TRUNCATED = ('cannot read checkpoint (truncated or damaged: PytorchStreamReader failed reading zip archive: failed '
             'finding central directory); if it was downloaded, delete it and download it again')
NOT_A_CHECKPOINT = "cannot read checkpoint: not a PyTorch or safetensors file (it starts with b'hello wo')"

# (id, script, arguments, text(s) the last stderr line holds, the error comes before any work)
# Arguments are formatted with the paths of the `world` fixture; train.py cases get TINY first
# and their own --output, validate.py cases -j 0 --img-size 16.
CASES = [
    # sizes and counts
    ('img_size_zero', 'train', DIGITS + ['--img-size', '0'], '--img-size 0: must be at least 3 pixels', True),
    ('input_size_negative', 'train', DIGITS + ['--input-size', '3', '-4', '16'], '--input-size 3 -4 16: needs', True),
    ('batch_size_zero', 'train', DIGITS + ['-b', '0'], '--batch-size 0: must be a whole number >= 1', True),
    ('epochs_zero', 'train', DIGITS + ['--epochs', '0'], '--epochs 0: must be a whole number >= 1', True),
    ('workers_negative', 'train', DIGITS + ['-j', '-1'], '--workers -1: must be a whole number >= 0', True),
    ('lr_nan', 'train', DIGITS + ['--lr', 'nan'], '--lr nan: must be a finite number >= 0', True),
    ('lr_inf', 'train', DIGITS + ['--lr', 'inf'], '--lr inf: must be a finite number >= 0', True),
    ('lr_negative', 'train', DIGITS + ['--lr', '-0.1'], '--lr -0.1: must be a finite number >= 0', True),
    ('output_is_file', 'train', DIGITS + ['--output', '{afile}'], 'is a file, not a folder', True),
    ('output_under_file', 'train', DIGITS + ['--output', '{afile}/out'], 'is a file, so no folder can be made', True),
    ('output_unwritable', 'train', DIGITS + ['--output', '{readonly}/out'], 'cannot write in', True),
    ('results_file_is_folder', 'validate', DIGITS + ['--results-file', '{root}'], 'is a folder: pass a file', True),
    ('fresh_run_into_existing_run', 'train', DIGITS + ['--output', '{root}', '--experiment', 'run'],
     'already holds a training run', True),
    # resume / checkpoints
    ('resume_other_model', 'train', DIGITS + ['--model', 'cdfformer_s18', '--resume', '{last}', '--output', '{root}',
                                              '--experiment', 'run'],
     'is a checkpoint of dfformer_s18, this run builds cdfformer_s18: pass --model dfformer_s18', True),
    ('resume_other_img_size', 'train', DIGITS + ['--img-size', '32', '--resume', '{last}', '--output', '{root}',
                                                 '--experiment', 'run'],
     'was trained at 16x16 px, this run is set to 32x32', True),
    ('resume_other_class_count', 'train', ['{good}', '--resume', '{last}', '--output', '{root}', '--experiment', 'run'],
     'has a 10-class classifier, this run 3 classes (the data): resume it on the data it was trained on', True),
    ('resume_other_optimizer', 'train', DIGITS + ['--opt', 'adamw', '--resume', '{last}', '--output', '{root}',
                                                  '--experiment', 'run'],
     'was trained with --opt sgd, this run with --opt adamw: its optimizer state does not fit', True),
    ('resume_truncated', 'train', DIGITS + ['--resume', '{truncated}'], '--resume {truncated}: ' + TRUNCATED, True),
    ('resume_text_file', 'train', DIGITS + ['--resume', '{text}'], '--resume {text}: ' + NOT_A_CHECKPOINT, True),
    ('initial_checkpoint_truncated', 'train', DIGITS + ['--initial-checkpoint', '{truncated}'],
     '--initial-checkpoint {truncated}: ' + TRUNCATED, True),
    ('initial_checkpoint_text_file', 'train', DIGITS + ['--initial-checkpoint', '{text}'],
     '--initial-checkpoint {text}: ' + NOT_A_CHECKPOINT, True),
    ('pretrained_path_missing', 'train', DIGITS + ['--pretrained-path', '{root}/dfformer_s18.pth'],
     '--pretrained-path {root}/dfformer_s18.pth: no such file', True),
    ('pretrained_path_text_file', 'train', DIGITS + ['--pretrained-path', '{text}'],
     '--pretrained-path {text}: ' + NOT_A_CHECKPOINT, True),
    ('pretrained_path_and_initial_checkpoint', 'train', DIGITS + ['--pretrained-path', '{text}',
                                                                  '--initial-checkpoint', '{text}'],
     'give the starting weights once: --pretrained-path FILE (adapted to this run: classifier, input size) or '
     '--initial-checkpoint FILE (loaded as it is)', True),
    ('validate_other_model', 'validate', DIGITS + ['--model', 'cdfformer_s18', '--checkpoint', '{last}'],
     'is a checkpoint of dfformer_s18, this run builds cdfformer_s18: pass --model dfformer_s18', True),
    ('validate_truncated', 'validate', DIGITS + ['--checkpoint', '{truncated}'],
     '--checkpoint {truncated}: ' + TRUNCATED, True),
    ('validate_text_file', 'validate', DIGITS + ['--checkpoint', '{text}'], '--checkpoint {text}: ' + NOT_A_CHECKPOINT,
     True),
    ('validate_use_ema_without_ema', 'validate', DIGITS + ['--checkpoint', '{last}', '--use-ema'],
     '--checkpoint {last}: has no EMA weights (state_dict_ema); drop --use-ema', True),
    # data
    ('class_folders_differ', 'train', ['{mismatch}'],
     'different classes (3 vs 3; only in train: c; only in validation: d)', True),
    ('empty_split_folder', 'train', ['{empty_split}'], 'has no class folders', True),
    ('empty_class_folder', 'train', ['{empty_class}'], 'class folder {empty_class}/train/b has no images', True),
    ('corrupt_image_j0', 'train', ['{corrupt}', '-j', '0'],
     '{corrupt}/train/a/bad.png: unreadable image (cannot identify image file', False),
    ('corrupt_image_j2', 'train', ['{corrupt}', '-j', '2'],
     '{corrupt}/train/a/bad.png: unreadable image (cannot identify image file', False),
    # offline
    ('pretrained_offline', 'train', DIGITS + ['--pretrained'], (
        'could not download the pretrained weights of dfformer_s18 from '
        'https://github.com/okojoalg/dfformer/releases/download/weights/dfformer_s18.pth',
        '{home}/torch/hub/checkpoints/ (where --pretrained / pretrained=True finds it), or load that local file: '
        '--pretrained-path dfformer_s18.pth instead of --pretrained'), False),
    ('pretrained_without_released_weights', 'train', DIGITS + ['--model', 'gfformer_s18', '--pretrained'],
     '--pretrained: gfformer_s18 has no released weights', True),
]
OFFLINE = {'pretrained_offline'}
SKIPPED_AS_ROOT = {'output_unwritable'}  # root writes into a 0o500 folder; output_under_file covers root
USE_THE_RUN = {'test_existing_run_is_untouched', 'test_trains_at_16_px_and_leaves_no_temporary_files'}


def _save_images(folder, count, seed):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.RandomState(seed)
    for i in range(count):
        Image.fromarray((rng.rand(20, 24, 3) * 255).astype(np.uint8)).save(folder / f'{i}.png')


def _image_folder(root, train_classes, val_classes, count=2):
    for split, classes in (('train', train_classes), ('val', val_classes)):
        for i, name in enumerate(classes):
            _save_images(root / split / name, count, seed=i)
    return root


def _listing(folder):
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


def _inputs(root):
    """Broken files and data folders (the trained run's files are added by `world`)."""
    run = root / 'run'
    paths = dict(root=root, run=run, last=run / 'last.pth.tar', home=root / 'home', afile=root / 'afile',
                 readonly=root / 'readonly', text=root / 'notes.txt', truncated=root / 'truncated.pth.tar')
    paths['afile'].write_text('not a folder\n')
    paths['readonly'].mkdir()
    paths['readonly'].chmod(0o500)
    paths['home'].mkdir()
    paths['text'].write_text('hello world\nthese are my notes\n')
    paths['good'] = _image_folder(root / 'good', 'abc', 'abc')
    paths['mismatch'] = _image_folder(root / 'mismatch', 'abc', 'abd')
    paths['empty_split'] = _image_folder(root / 'empty_split', 'ab', '')
    (paths['empty_split'] / 'val').mkdir()
    paths['empty_class'] = _image_folder(root / 'empty_class', 'ab', 'ab')
    shutil.rmtree(paths['empty_class'] / 'train' / 'b')
    (paths['empty_class'] / 'train' / 'b').mkdir()
    # 8 training images, all in the one step of batch 8 of a tiny run; one is not an image
    paths['corrupt'] = _image_folder(root / 'corrupt', 'ab', 'ab', count=4)
    (paths['corrupt'] / 'train' / 'a' / '3.png').unlink()
    (paths['corrupt'] / 'train' / 'a' / 'bad.png').write_bytes(b'this is not a png')
    return {k: str(v) for k, v in paths.items()}


def _command(case_id, script, args, paths):
    args = [a.format(**paths) for a in args]
    if script == 'train':
        argv = TINY + args
        if '--output' not in args:
            argv += ['--output', os.path.join(paths['root'], 'out', case_id)]
    else:
        argv = ['-j', '0', '--img-size', '16'] + args
    env = dict(ENV)
    if case_id in OFFLINE:  # no cached weights, and every https request goes to a closed port
        for key in ('no_proxy', 'NO_PROXY'):
            env.pop(key, None)
        env.update(HOME=paths['home'], TORCH_HOME=os.path.join(paths['home'], 'torch'), HF_HUB_OFFLINE='1',
                   https_proxy='http://127.0.0.1:9', HTTPS_PROXY='http://127.0.0.1:9')
    return [sys.executable, os.path.join(ROOT, f'{script}.py')] + argv, env


def _needs_run(case) -> bool:
    return any('{last}' in a or '{truncated}' in a or a == 'run' for a in case[2])


@pytest.fixture(scope='module')
def world(request, tmp_path_factory):
    """Every selected case run once as a subprocess, two at a time, while a tiny run trains in this
    process (1 epoch, then resumed for a 2nd, at 16x16 px): the cases that need its files start
    after it. Holds the results {id: CompletedProcess} and listings of the run folder after its
    first and resumed runs and before and after the cases."""
    root = tmp_path_factory.mktemp('cli')
    paths = _inputs(root)
    # only the selected cases run (pytest -k), and the training only where something needs it
    items = [i for i in request.session.items if getattr(i, 'module', None) is sys.modules[__name__]]
    selected = {i.callspec.params['case_id'] for i in items if hasattr(i, 'callspec')}
    todo = [c for c in CASES if c[0] in selected and not (IS_ROOT and c[0] in SKIPPED_AS_ROOT)]
    train = any(_needs_run(c) for c in todo) or any(i.originalname in USE_THE_RUN for i in items)

    def run(case):
        cmd, env = _command(case[0], case[1], case[2], paths)
        return subprocess.run(cmd, env=env, cwd=root, capture_output=True, text=True, timeout=300)

    listings = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        futures = {c[0]: pool.submit(run, c) for c in todo if not _needs_run(c)}
        if train:
            argv = DIGITS + TINY + ['--output', str(root), '--experiment', 'run', '--checkpoint-hist', '1']
            train_script.main(argv)
            listings['after_first'] = _listing(root / 'run')
            train_script.main(argv + ['--epochs', '2', '--resume', paths['last']])
            listings['after_resume'] = listings['before'] = _listing(root / 'run')
            with open(paths['last'], 'rb') as f, open(paths['truncated'], 'wb') as out:
                out.write(f.read(100_000))
            futures.update({c[0]: pool.submit(run, c) for c in todo if _needs_run(c)})
        results = {k: f.result() for k, f in futures.items()}
    if train:
        listings['after'] = _listing(root / 'run')
    yield dict(paths=paths, results=results, **listings)
    os.chmod(paths['readonly'], 0o700)


@pytest.mark.parametrize('case_id,script,args,message,upfront', CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line(world, case_id, script, args, message, upfront):
    if IS_ROOT and case_id in SKIPPED_AS_ROOT:
        pytest.skip('running as root: a 0o500 folder is writable to root (output_under_file checks the probe)')
    result = world['results'][case_id]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr[-3000:]
    assert 'Traceback' not in result.stderr and 'Original' not in result.stderr, result.stderr[-3000:]
    assert lines and lines[-1].startswith(f'{script}.py: error: '), result.stderr[-3000:]
    for text in (message,) if isinstance(message, str) else message:
        assert text.format(**world['paths']) in lines[-1]
    assert sum('error' in line.lower() for line in lines) == 1, result.stderr[-3000:]
    if upfront:  # nothing was logged before the error: no work was done
        assert len(lines) == 1, result.stderr[-3000:]


def test_existing_run_is_untouched(world):
    """The error cases that name the trained run's folder (resume, fresh run into it) left it as it was."""
    assert world['after'] == world['before']


def test_trains_at_16_px_and_leaves_no_temporary_files(world):
    """The tiny run at 16x16 px trained (1 epoch, then resumed for a 2nd); neither the run nor the
    resumed run left a temporary file (the savers' tmp.pth.tar / *.tmp, atomic_open's *.tmp)."""
    first, resumed = world['after_first'], world['after_resume']
    assert {'args.yaml', 'summary.csv', 'last.pth.tar', 'model_best.pth.tar', 'checkpoint-0.pth.tar'} <= set(first)
    for files in (first, resumed):
        assert not [f for f in files if f.endswith('.tmp') or 'tmp' in f], files
    with open(os.path.join(world['paths']['run'], 'summary.csv')) as f:
        rows = f.read().splitlines()
    assert [r.split(',')[0] for r in rows] == ['epoch', '0', '1']
    last = torch.load(world['paths']['last'], weights_only=True)
    assert last['epoch'] == 1 and last['args']['img_size'] == 16


def test_results_file_is_written_atomically(tmp_path):
    """validate.py's results file is replaced only by a complete one: a failed write (here an
    unserialisable value) leaves the old file and no temporary file."""
    path = tmp_path / 'r.json'
    validate_script.write_results([{'top1': 1.0}], str(path), 'json')
    assert json.loads(path.read_text()) == {'top1': 1.0}
    with pytest.raises(TypeError):
        validate_script.write_results([{'top1': 2.0, 'bad': object()}], str(path), 'json')
    assert json.loads(path.read_text()) == {'top1': 1.0}
    assert sorted(p.name for p in tmp_path.iterdir()) == ['r.json']


def test_worker_traceback_is_reduced_to_its_line():
    """What torch's DataLoader re-raises for an exception in a worker process, as one line."""
    try:
        raise DataError('/data/train/a/bad.png: unreadable image (cannot identify image file)')
    except DataError:
        from torch.utils.data._utils import ExceptionWrapper
        wrapped = ExceptionWrapper(where='in DataLoader worker process 0')
    with pytest.raises(DataError) as info:
        wrapped.reraise()
    assert 'Original Traceback' in str(info.value)
    assert one_line(info.value) == '/data/train/a/bad.png: unreadable image (cannot identify image file)'


def test_unknown_model_keyword_is_a_type_error():
    with pytest.raises(TypeError, match="unexpected keyword argument 'foo'"):
        timm.create_model('dfformer_s18', foo=1)

"""No traceback left, nothing lost: every failure a user can cause ends in one line naming the fix
(exit code != 0), and what was already done stays done (results of the readable images, the
previous checkpoint, summary.csv's rows).

The scripts run for real, as subprocesses, as in tests/test_cli_errors.py (whose helpers and
environment this reuses); the up-front cases two at a time.
"""
import concurrent.futures
import importlib.util
import os
import re
import subprocess
import sys

import pytest
import timm
from conftest import ROOT
from test_cli_errors import DIGITS, TINY

ENV = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONWARNINGS': 'ignore', 'HF_HUB_OFFLINE': '1'}


def run_script(script, *args, env=None, cwd=None, timeout=300) -> subprocess.CompletedProcess:
    """`python <script> args...` (script relative to the repo root)."""
    return subprocess.run([sys.executable, os.path.join(ROOT, script), *map(str, args)], env=env or ENV,
                          cwd=cwd or ROOT, capture_output=True, text=True, timeout=timeout)


def error_line(result: subprocess.CompletedProcess, script: str, code: int = 2) -> str:
    """The one error line of a run that failed with exit code `code` and no traceback: the last
    line of stderr, '<script name>: error: ...', and the only one that speaks of an error."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == code, result.stderr[-3000:]
    assert 'Traceback' not in result.stderr, result.stderr[-3000:]
    assert lines and lines[-1].startswith(f'{os.path.basename(script)}: error: '), result.stderr[-3000:]
    assert sum('error' in line.lower() for line in lines) == 1, result.stderr[-3000:]
    return lines[-1]


# ----------------------------------------------------------------------------------------------
# Malformed model arguments: a ValueError naming the argument, not an IndexError from inside

BAD_MODEL_ARGS = [
    (dict(depths=(1, 2)), 'depths must be 4 whole numbers >= 0, one per stage (got (1, 2))'),
    (dict(depths=(1, 1, 1, 1, 1)), 'depths must be 4 whole numbers'),
    (dict(depths=(1.5, 1, 1, 1)), 'depths must be 4 whole numbers'),
    (dict(depths=(1, -1, 1, 1)), 'depths must be 4 whole numbers >= 0'),
    (dict(depths='3339'), 'depths must be 4 whole numbers'),
    (dict(dims=(8, 16)), 'dims must be 4 whole numbers >= 1, one per stage (got (8, 16))'),
    (dict(dims=(8.5, 16, 24, 32)), 'dims must be 4 whole numbers'),
    (dict(dims=(0, 16, 24, 32)), 'dims must be 4 whole numbers >= 1'),
    (dict(token_mixers=('sepconv', 'sepconv')), 'token_mixers must be 4 token mixer names'),
    (dict(res_scale_init_values=(None,)), 'res_scale_init_values must be 4 numbers or None'),
    (dict(img_size=-5), 'img_size must be at least 3 pixels'),
    (dict(img_size=(16,)), 'img_size must be a whole number or a pair (height, width)'),
    (dict(img_size=(16, 16, 16)), 'img_size must be a whole number or a pair (height, width)'),
    (dict(img_size=2.5), 'img_size must be a whole number or a pair (height, width)'),
    (dict(num_classes=-3), 'num_classes must be a whole number >= 0'),
    (dict(in_chans=0), 'in_chans must be a whole number >= 1'),
    (dict(mlp_ratio=-1), 'mlp_ratio must be a number > 0'),
    (dict(drop_path_rate=2.0), 'drop_path_rate must be a finite number from 0 to 1'),
    (dict(drop_rate=float('nan')), 'drop_rate must be a finite number from 0 to 1'),
    (dict(mixer_kwargs=[('num_filters', 2)]), 'mixer_kwargs must be a dict'),
]


@pytest.mark.parametrize('kwargs,message', BAD_MODEL_ARGS, ids=[next(iter(k)) + str(i) for i, (k, _) in
                                                                enumerate(BAD_MODEL_ARGS)])
def test_malformed_model_argument_is_a_value_error(kwargs, message):
    with pytest.raises(ValueError) as info:
        timm.create_model('dfformer_s18', **kwargs)
    assert type(info.value) is ValueError and str(info.value).startswith(message), info.value


def test_malformed_dense_out_indices():
    import models
    with pytest.raises(ValueError, match=r'^out_indices must be stage indices from 0 to 3 \(got \(0, 4\)\)'):
        models.DFFormerDense(out_indices=(0, 4))


# ----------------------------------------------------------------------------------------------
# Bad input found before any work: (id, script, arguments, text of its one error line). Arguments
# are formatted with {tmp} (a scratch folder) and {ckpt} (a tiny train.py-like checkpoint).

NO_WANDB = importlib.util.find_spec('wandb') is None
UPFRONT = [
    # malformed model arguments through the command line
    ('model_kwargs_depths', 'onnx_export.py', ['{tmp}/m.onnx', '--model-kwargs', 'depths=(1,2)'],
     'onnx_export.py: error: --model-kwargs: depths must be 4 whole numbers >= 0, one per stage (got (1, 2))'),
    ('model_kwargs_no_value', 'onnx_export.py', ['{tmp}/m.onnx', '--model-kwargs', 'depths'],
     'onnx_export.py: error: --model-kwargs depths: pass KEY=VALUE items'),
    # numbers out of range, in every script (train.py cases get TINY, DIGITS and an --output)
    ('seed_negative', 'train.py', ['--seed', '-1'],
     'train.py: error: --seed -1: must be a whole number from 0 to 4294967295 (the default is 42)'),
    ('smoothing_one', 'train.py', ['--smoothing', '1'],
     'train.py: error: --smoothing 1: must be a finite number >= 0 and < 1 (the default is 0.1)'),
    ('decay_epochs_zero', 'train.py', ['--sched', 'step', '--decay-epochs', '0'],
     'train.py: error: --decay-epochs 0: must be a finite number > 0 (the default is 100)'),
    ('opt_betas_one', 'train.py', ['--opt', 'adamw', '--opt-betas', '0.9', '1'],
     'train.py: error: --opt-betas 0.9 1: must be finite numbers >= 0 and < 1'),
    ('recount_zero', 'train.py', ['--reprob', '0.5', '--recount', '0'],
     'train.py: error: --recount 0: must be a whole number >= 1 (the default is 1)'),
    ('std_zero', 'train.py', ['--std', '0', '0', '0'], 'train.py: error: --std 0 0 0: must be finite numbers > 0'),
    ('validate_mean_two_values', 'validate.py', ['--dataset', 'digits', '--mean', '0.5', '0.5'],
     'validate.py: error: --mean 0.5 0.5: give 1 value (for every channel) or 3, one per channel'),
    ('inference_topk_zero', 'inference.py', ['{tmp}', '--checkpoint', '{ckpt}', '--topk', '0'],
     'inference.py: error: --topk 0: must be a whole number >= 1 (the default is 1)'),
    ('inference_log_freq_zero', 'inference.py', ['{tmp}', '--checkpoint', '{ckpt}', '--log-freq', '0'],
     'inference.py: error: --log-freq 0: must be a whole number >= 1 (the default is 10)'),
    ('onnx_export_batch_zero', 'onnx_export.py', ['{tmp}/m.onnx', '-b', '0'],
     'onnx_export.py: error: --batch-size 0: must be a whole number >= 1 (the default is 1)'),
    ('onnx_validate_tol_negative', 'tools/onnx_validate.py', ['{onnx}', '--tol', '-1'],
     'onnx_validate.py: error: --tol -1: must be a finite number >= 0 (the default is 0.0001)'),
    ('onnx_validate_max_images_zero', 'tools/onnx_validate.py', ['{onnx}', '--max-images', '0'],
     'onnx_validate.py: error: --max-images 0: must be a whole number >= 1'),
    ('benchmark_img_size', 'benchmark.py', ['--img-size', '224', '2'],
     'benchmark.py: error: --img-size 224 2: must be at least 3 pixels'),
    ('benchmark_repeats_zero', 'benchmark.py', ['--repeats', '0'],
     'benchmark.py: error: --repeats 0: must be a whole number >= 1'),
    ('benchmark_threads_negative', 'benchmark.py', ['--threads', '-1'],
     'benchmark.py: error: --threads -1: must be a whole number >= 0 (the default is 0)'),
    ('flops_img_size_zero', 'tools/flops.py', ['--img-size', '0'],
     'flops.py: error: --img-size 0: must be at least 3 pixels'),
    ('visualize_filters_num_classes_zero', 'tools/visualize_filters.py', ['--image', 'x.png', '--num-classes', '0'],
     'visualize_filters.py: error: --num-classes 0: must be a whole number >= 1'),
    ('make_shards_max_count_zero', 'tools/make_shards.py', ['{tmp}', '{tmp}/shards', '--max-count', '0'],
     'make_shards.py: error: --max-count 0: must be a whole number >= 1 (the default is 10000)'),
    ('make_shards_max_size_zero', 'tools/make_shards.py', ['{tmp}', '{tmp}/shards', '--max-size', '0'],
     'make_shards.py: error: --max-size 0: must be a finite number >= 1 (the default is 1000000000.0)'),
    ('avg_checkpoints_n_zero', 'tools/avg_checkpoints.py', ['--input', '{tmp}', '-n', '0'],
     'avg_checkpoints.py: error: -n 0: must be a whole number >= 1 (the default is 10)'),
    ('export_hf_img_size', 'tools/export_hf.py', ['--model', 'dfformer_s18', '--output-dir', '{tmp}/hf',
                                                  '--checkpoint', '{ckpt}', '--img-size', '2'],
     'export_hf.py: error: --img-size 2: must be at least 3 pixels'),
    ('mm_get_flops_shape', 'tools/mm/get_flops.py', ['config.py', '--shape', '512', '512', '3'],
     'get_flops.py: error: --shape 512 512 3: pass the input height and width (or one size for both)'),
    # option combinations timm or torch reject deep inside
    ('opt_sgd_momentum_zero', 'train.py', ['--opt', 'sgd', '--momentum', '0'],
     "train.py: error: --opt sgd --momentum 0: timm's sgd is SGD with Nesterov momentum, which needs --momentum > 0; "
     'pass --opt momentum for SGD without Nesterov momentum'),
    ('opt_betas_count', 'train.py', ['--opt', 'adan', '--opt-betas', '0.9', '0.99'],
     'train.py: error: --opt-betas 0.9 0.99: --opt adan takes 3 betas'),
    ('opt_unknown', 'train.py', ['--opt', 'adamx'], 'train.py: error: --opt adamx: unknown optimizer; e.g. sgd,'),
    ('sched_unknown', 'train.py', ['--sched', 'linear'],
     "train.py: error: argument --sched: invalid choice: 'linear' (choose from 'cosine',"),
    ('sched_plateau_on_updates', 'train.py', ['--sched', 'plateau', '--sched-on-updates'],
     'train.py: error: --sched plateau --sched-on-updates: the plateau schedule steps once per epoch (on the eval '
     'metric); drop --sched-on-updates'),
    ('mixup_odd_batch', 'train.py', ['--mixup', '0.8', '-b', '7'],
     'train.py: error: --batch-size 7 with --mixup / --cutmix: timm mixes the images of a batch in pairs, so the '
     'batch size must be even (e.g. --batch-size 8)'),
    ('cutmix_minmax_one_value', 'train.py', ['--cutmix-minmax', '0.2'],
     'train.py: error: argument --cutmix-minmax: expected 2 arguments'),
    ('cutmix_minmax_order', 'train.py', ['--cutmix-minmax', '0.8', '0.2'],
     'train.py: error: --cutmix-minmax 0.8 0.2: pass the smallest share of the image to cut, then the largest'),
    ('scale_one_value', 'train.py', ['--scale', '0.5'], 'train.py: error: argument --scale: expected 2 arguments'),
    ('aa_unknown', 'train.py', ['--aa', 'nonsense'],
     'train.py: error: --aa nonsense: Unknown AA policy nonsense; e.g. --aa rand-m9-mstd0.5-inc1 (RandAugment)'),
    ('remode_unknown', 'train.py', ['--reprob', '0.5', '--remode', 'noise'],
     "train.py: error: argument --remode: invalid choice: 'noise'"),
    ('train_interpolation_unknown', 'train.py', ['--train-interpolation', 'cubic'],
     "train.py: error: argument --train-interpolation: invalid choice: 'cubic'"),
    ('eval_metric_unknown', 'train.py', ['--eval-metric', 'acc'],
     "train.py: error: argument --eval-metric: invalid choice: 'acc' (choose from 'top1', 'top5', 'loss')"),
    ('clip_mode_unknown', 'train.py', ['--clip-grad', '1', '--clip-mode', 'max'],
     "train.py: error: argument --clip-mode: invalid choice: 'max'"),
    ('torchcompile_unknown_backend', 'train.py', ['--torchcompile', 'fast'],
     'train.py: error: --torchcompile fast: unknown backend; e.g. inductor'),
    ('device_unknown', 'train.py', ['--device', 'gpu'],
     'train.py: error: --device gpu: not a device; pass cpu, cuda or cuda:N (GPU N)'),
    ('device_missing', 'train.py', ['--device', 'cuda:99'], 'train.py: error: --device cuda:99: '),
    ('validate_device_unknown', 'validate.py', ['--dataset', 'digits', '--device', 'gpu'],
     'validate.py: error: --device gpu: not a device'),
    ('inference_device_unknown', 'inference.py', ['{tmp}', '--checkpoint', '{ckpt}', '--device', 'gpu'],
     'inference.py: error: --device gpu: not a device'),
] + ([('log_wandb_without_wandb', 'train.py', ['--log-wandb'],
       'train.py: error: --log-wandb needs the wandb package: pip install wandb (or drop --log-wandb)')]
     if NO_WANDB else [])


def _argv(case, paths):
    args = [a.format(**paths) for a in case[2]]
    if case[1] == 'train.py':
        args = TINY + DIGITS + args + ['--output', os.path.join(paths['tmp'], 'out', case[0])]
    return args


@pytest.fixture(scope='module')
def upfront(request, tmp_path_factory):
    """Every selected UPFRONT case run once as a subprocess, two at a time: {id: CompletedProcess}."""
    tmp = tmp_path_factory.mktemp('upfront')
    paths = dict(tmp=str(tmp), ckpt=str(tmp / 'weights.pth'), onnx=str(tmp / 'model.onnx'))
    for name in ('ckpt', 'onnx'):  # (only their existence is checked before the numbers)
        with open(paths[name], 'w') as f:
            f.write('not read\n')
    items = [i for i in request.session.items if getattr(i, 'module', None) is sys.modules[__name__]]
    selected = {i.callspec.params.get('case_id') for i in items if hasattr(i, 'callspec')}
    todo = [c for c in UPFRONT if c[0] in selected]
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        futures = {c[0]: pool.submit(run_script, c[1], *_argv(c, paths), cwd=str(tmp)) for c in todo}
        results = {k: f.result() for k, f in futures.items()}
    return dict(paths=paths, results=results)


@pytest.mark.parametrize('case_id,script,args,message', UPFRONT, ids=[c[0] for c in UPFRONT])
def test_bad_input_is_one_line_upfront(upfront, case_id, script, args, message):
    result = upfront['results'][case_id]
    line = error_line(result, script)
    assert message.format(**upfront['paths']) in line, line
    # found before any work: nothing else on stderr
    assert len([x for x in result.stderr.splitlines() if x.strip()]) == 1, result.stderr[-3000:]


def test_posterize_of_zero_bits_is_black():
    """timm's posterize at 0 bits (RandAugment 'inc1' at magnitude 10, AutoAugment v0) gives a
    black image, as with older Pillow; Pillow 11+ alone raises 'bits must be between ...'."""
    from PIL import Image
    from timm.data import auto_augment

    import engine.data  # noqa: F401  (replaces the op)
    image = Image.new('RGB', (8, 8), (200, 100, 50))
    for name in ('PosterizeIncreasing', 'Posterize'):
        op = auto_augment.AugmentOp(name, prob=1.0, magnitude=10 if name == 'PosterizeIncreasing' else 0)
        assert op(image).getpixel((0, 0)) == (0, 0, 0)
    # other bit counts as before: magnitude 5 keeps 2 bits
    from PIL import ImageOps
    assert auto_augment.AugmentOp('PosterizeIncreasing', prob=1.0, magnitude=5)(image).getpixel((0, 0)) == (
        ImageOps.posterize(image, 2).getpixel((0, 0)))


def test_rand_augment_inc1_at_magnitude_10_trains(tmp_path):
    """The authors' RandAugment family at its largest magnitude: 30 ops an image, posterize to 0
    bits among them, trains (it ended in a traceback in the first step)."""
    result = run_script('train.py', *TINY, *DIGITS, '--aa', 'rand-m10-n30-mstd0-inc1', '--output', tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]


# ----------------------------------------------------------------------------------------------
# A full disk while writing a checkpoint or results: one line naming the folder and the space
# needed; the previous files intact

# Loaded by the scripts' Python at start (a sitecustomize on PYTHONPATH): a file whose name matches
# $DFF_TEST_NO_SPACE is opened for writing as /dev/full, where every write fails with ENOSPC.
FULL_DISK = '''import builtins, fnmatch, os
_pattern, _open = os.environ.get('DFF_TEST_NO_SPACE'), builtins.open
def _open_full(file, mode='r', *args, **kwargs):
    if _pattern and isinstance(file, (str, os.PathLike)) and set(mode) & set('wa') and fnmatch.fnmatch(
            os.path.basename(os.fspath(file)), _pattern):
        file = '/dev/full'
    return _open(file, mode, *args, **kwargs)
builtins.open = _open_full
'''


def _full_disk_env(tmp_path, pattern):
    hook = tmp_path / 'full_disk'
    hook.mkdir(exist_ok=True)
    (hook / 'sitecustomize.py').write_text(FULL_DISK)
    return {**ENV, 'DFF_TEST_NO_SPACE': pattern,
            'PYTHONPATH': os.pathsep.join([str(hook)] + [p for p in [ENV.get('PYTHONPATH')] if p])}


def _files(folder):
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()}


def test_disk_full_while_saving_a_checkpoint(tmp_path):
    """The resumed run's epoch-1 checkpoint hits a full disk: one line naming the run folder and the
    checkpoint's size, last.pth.tar and the other checkpoints as they were, no temporary file."""
    run = tmp_path / 'run'
    argv = [*TINY, *DIGITS, '--output', tmp_path, '--experiment', 'run', '--checkpoint-hist', '1']
    first = run_script('train.py', *argv)
    assert first.returncode == 0, first.stderr[-3000:]
    before = _files(run)
    result = run_script('train.py', *argv, '--epochs', '2', '--resume', 'auto',
                        env=_full_disk_env(tmp_path, 'tmp.pth.tar.tmp'))
    line = error_line(result, 'train.py')
    assert line.startswith(f'train.py: error: no space left in {run} for the checkpoint of epoch 1 (about '), line
    assert re.search(r'\(about \d+\.\d MiB needed, [\d.]+ \w+ free\): free space there or write elsewhere; the files '
                     r'there are unchanged$', line), line
    after = _files(run)
    assert {k: v for k, v in after.items() if k.endswith('.pth.tar')} == {
        k: v for k, v in before.items() if k.endswith('.pth.tar')}
    assert not [f for f in after if 'tmp' in f], after
    # the epoch's summary row is written before its checkpoint (the resume drops it again)
    assert [r.split(',')[0] for r in (run / 'summary.csv').read_text().splitlines()] == ['epoch', '0', '1']
    # no space for that row (appended: no claim on what the file holds)
    result = run_script('train.py', *argv, '--epochs', '2', '--resume', 'auto',
                        env=_full_disk_env(tmp_path, 'summary.csv'))
    line = error_line(result, 'train.py')
    assert re.fullmatch(rf'train.py: error: no space left in {re.escape(str(run))} for the summary of epoch 1 '
                        r'\([\d.]+ \w+ free\): free space there or write elsewhere', line), line
    assert {k: v for k, v in _files(run).items() if k.endswith('.pth.tar')} == {
        k: v for k, v in before.items() if k.endswith('.pth.tar')}


def test_disk_full_while_writing_results(tmp_path):
    """validate.py's --results-file on a full disk: one line naming its folder, the old file kept."""
    results = tmp_path / 'r.json'
    results.write_text('{"top1": 1.0}\n')
    result = run_script('validate.py', *DIGITS, '-j', '0', '--img-size', '16', '-b', '400', '--results-file', results,
                        env=_full_disk_env(tmp_path, 'r.json.tmp'))
    line = error_line(result, 'validate.py')
    assert re.fullmatch(rf'validate.py: error: no space left in {re.escape(str(tmp_path))} for r.json \(about 14 '
                        r'bytes needed, [\d.]+ \w+ free\): free space there or write elsewhere; r.json there is '
                        r'unchanged', line), line
    assert results.read_text() == '{"top1": 1.0}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['full_disk', 'r.json']


# ----------------------------------------------------------------------------------------------
# Two runs of one --experiment folder: one runs, the other stops in one line; summary.csv never
# gets a row twice

def test_run_folder_in_use_refuses_a_fresh_start_and_a_resume(tmp_path):
    """While a process holds the run folder's lock (as a running train.py does), a run of that
    --experiment is refused up front, a fresh start and a --resume alike, and writes nothing."""
    from engine.files import try_lock
    run = tmp_path / 'run'
    run.mkdir()
    lock, _ = try_lock(str(run / 'train.lock'))
    argv = [*TINY, *DIGITS, '--output', tmp_path, '--experiment', 'run']
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            fresh, resumed = pool.map(lambda extra: run_script('train.py', *argv, *extra), ([], ['--resume', 'auto']))
    finally:
        lock.release()
    assert error_line(fresh, 'train.py') == (
        f'train.py: error: --experiment run: {run} is in use by a training run now (process {os.getpid()}): wait '
        'for it to end, or pass another --experiment')
    assert error_line(resumed, 'train.py') == (
        f'train.py: error: --resume auto: {run} is in use by a training run now (process {os.getpid()}): resume it '
        'once that run has ended (or stop it first)')
    assert len(fresh.stderr.strip().splitlines()) == len(resumed.stderr.strip().splitlines()) == 1
    assert os.listdir(run) == ['train.lock']


def test_run_folder_lock_is_released_when_its_run_is_killed(tmp_path):
    """A run killed (SIGKILL: no clean-up) leaves its folder free: the kernel drops the lock, and
    --resume auto then starts the run again."""
    argv = [*TINY, *DIGITS, '--output', tmp_path, '--experiment', 'run']
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, 'train.py'), *map(str, argv), '--max-steps-per-epoch',
                             '1000', '--log-interval', '1'], env=ENV, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stderr:  # (killed once it trains)
            if line.startswith('Train: 0 ['):
                break
        proc.kill()
    finally:
        proc.wait(timeout=60)
    result = run_script('train.py', *argv, '--resume', 'auto')
    assert result.returncode == 0, result.stderr[-3000:]


def test_two_runs_started_at_once_on_one_folder(tmp_path):
    """Two runs of one --experiment started together: one trains, the other stops in one line
    (the folder is in use, or, if it started after the first ended, already holds a run), and
    summary.csv has each epoch once."""
    argv = [*TINY, *DIGITS, '--output', tmp_path, '--experiment', 'run']
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda _: run_script('train.py', *argv), range(2)))
    assert sorted(r.returncode for r in results) == [0, 2], [r.stderr[-2000:] for r in results]
    line = error_line(next(r for r in results if r.returncode), 'train.py')
    assert 'is in use by a training run now' in line or 'already holds a training run' in line, line
    assert [r.split(',')[0] for r in (tmp_path / 'run' / 'summary.csv').read_text().splitlines()] == ['epoch', '0']

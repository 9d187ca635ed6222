"""Cluster-grade training through the real scripts: a stop signal mid-epoch writes a step-exact
checkpoint and exits with EXIT_PREEMPTED; `--resume auto` continues it to the same weights as an
uninterrupted run (1 process and 2 torchrun/gloo processes); the resume file's choice."""
import os
import re
import shutil
import signal
import subprocess
import sys

import pytest
import torch
from conftest import ROOT

from engine.data import ResumableSampler
from engine.resume import EXIT_PREEMPTED

PY = sys.executable
ENV = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONWARNINGS': 'ignore'}
# every random source of a step: augmentation (python / torch), mixup (numpy), random erasing,
# drop path (torch); EMA and the cosine schedule's per-update state
RUN = ['--dataset', 'digits', '--model', 'dfformer_s18', '--opt', 'adamw', '--lr', '1e-3', '--epochs', '2',
       '--warmup-epochs', '0', '--cooldown-epochs', '0', '--sched-on-updates', '-j', '0', '--img-size', '32',
       '-b', '8', '--max-steps-per-epoch', '6', '--log-interval', '1', '--mixup', '0.5', '--reprob', '0.25',
       '--drop-path', '0.1', '--model-ema', '--model-ema-decay', '0.9']
STOP_AT = r'Train: 1 \[   1/6'  # SIGTERM when epoch 1's second step is logged


def _run(cmd, stop_at=None, sig=signal.SIGTERM, env=None, cwd=None):
    """Run `cmd`; with `stop_at`, send `sig` when a log line matches it. (return code, output)"""
    proc = subprocess.Popen(cmd, env={**ENV, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, cwd=cwd)
    lines, sent = [], False
    for line in proc.stdout:
        lines.append(line)
        if stop_at and not sent and re.search(stop_at, line):
            proc.send_signal(sig)
            sent = True
    proc.wait(timeout=600)
    assert not stop_at or sent, ''.join(lines[-20:])
    return proc.returncode, ''.join(lines)


def _stopped_at(line, run):
    """(epoch, step) of the line a stopped train.py ends with, which names its checkpoint in `run`."""
    stopped = re.match(r'train.py: stopped by SIG\w+ after epoch (\d+) step (\d+): checkpoint (\S+); continue '
                       r'with: python train.py ', line)
    assert stopped, line
    epoch, step = int(stopped[1]), int(stopped[2])
    assert (epoch, step) < (2, 0) and stopped[3] == str(run / f'recovery-{epoch}-{step}.pth.tar'), line
    return epoch, step


def _weights(path):
    checkpoint = torch.load(path, weights_only=True)
    return {**checkpoint['state_dict'], **{f'ema.{k}': v for k, v in checkpoint['state_dict_ema'].items()}}


def _assert_same_weights(a, b):
    a, b = _weights(a), _weights(b)
    assert a.keys() == b.keys()
    worst = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
    assert worst <= 1e-5, worst


def test_sigterm_mid_epoch_then_resume_auto_ends_with_the_same_weights(tmp_path):
    train = [PY, os.path.join(ROOT, 'train.py')] + RUN + ['--output', str(tmp_path)]
    code, out = _run(train + ['--experiment', 'whole'])
    assert code == 0, out[-3000:]

    code, out = _run(train + ['--experiment', 'cut'], stop_at=STOP_AT)
    run = tmp_path / 'cut'
    last = out.strip().splitlines()[-1]
    assert code == EXIT_PREEMPTED, out[-3000:]
    epoch, step = _stopped_at(last, run)  # the step the signal came in (a loaded machine: a later one)
    assert last.endswith('--experiment cut --resume auto') and 'Traceback' not in out
    resume = torch.load(run / f'recovery-{epoch}-{step}.pth.tar', weights_only=True)['resume']
    assert (resume['epoch'], resume['step'], resume['world_size']) == (epoch, step + 1, 1)

    # a truncated newest checkpoint: --resume auto falls back to the one before (epoch 0's end)
    shutil.copytree(run, tmp_path / 'truncated')
    newest = tmp_path / 'truncated' / f'recovery-{epoch}-{step}.pth.tar'
    with open(newest, 'r+b') as f:
        f.truncate(os.path.getsize(newest) // 2)
    code, out = _run(train + ['--experiment', 'truncated', '--resume', 'auto', '--epochs', '1'])
    assert code == 0, out[-3000:]
    assert f'--resume auto: skipping {newest}, it cannot be read' in out
    assert "Loaded checkpoint '" + str(tmp_path / 'truncated' / 'last.pth.tar') in out

    code, out = _run(train + ['--experiment', 'cut', '--resume', 'auto'])
    assert code == 0, out[-3000:]
    assert f'from epoch {epoch} step {step + 1},' in out
    _assert_same_weights(tmp_path / 'whole' / 'last.pth.tar', run / 'last.pth.tar')
    assert (run / 'summary.csv').read_text() == (tmp_path / 'whole' / 'summary.csv').read_text()


def test_two_process_sigterm_then_resume_auto_ends_with_the_same_weights(tmp_path):
    train = ['bash', os.path.join(ROOT, 'distributed_train.sh'), '2'] + RUN + ['--output', str(tmp_path)]
    port = 29500 + os.getpid() % 1000
    env = {'PYTHON': PY, 'MASTER_PORT': str(port)}
    code, out = _run(train + ['--experiment', 'whole'], env=env)
    assert code == 0, out[-3000:]
    # SIGTERM to torchrun: it forwards the signal to both workers (as SLURM signals every task)
    code, out = _run(train + ['--experiment', 'cut'], stop_at=STOP_AT, env=env)
    stopped = [line for line in out.splitlines() if line.startswith('train.py: stopped by SIGTERM')]
    assert len(stopped) == 2 and stopped[0] == stopped[1], out[-3000:]  # each rank's line, the same step
    epoch, step = _stopped_at(stopped[0], tmp_path / 'cut')
    code, out = _run(train + ['--experiment', 'cut', '--resume', 'auto'], env={**env, 'MASTER_PORT': str(port + 1)})
    assert code == 0, out[-3000:]
    assert f'from epoch {epoch} step {step + 1},' in out and 'world size 2' in out
    _assert_same_weights(tmp_path / 'whole' / 'last.pth.tar', tmp_path / 'cut' / 'last.pth.tar')


def test_resume_auto_on_an_empty_folder_starts_fresh(tmp_path):
    argv = [PY, os.path.join(ROOT, 'train.py'), '--dataset', 'digits', '--model', 'dfformer_s18', '--epochs', '1',
            '-j', '0', '--img-size', '32', '-b', '8', '--max-steps-per-epoch', '1', '--output', str(tmp_path),
            '--resume', 'auto']
    code, out = _run(argv)
    assert code == 2 and out.strip().splitlines()[-1].startswith('train.py: error: --resume auto needs --experiment')
    (tmp_path / 'new').mkdir()
    code, out = _run(argv + ['--experiment', 'new'])
    assert code == 0, out[-3000:]
    assert 'from epoch 0,' in out and (tmp_path / 'new' / 'last.pth.tar').exists()
    # SLURM's warning signal (--signal=USR1@120) stops the same way
    code, out = _run(argv + ['--experiment', 'usr1', '--epochs', '2'], stop_at=r'Train: 0 \[', sig=signal.SIGUSR1)
    assert code == EXIT_PREEMPTED and 'train.py: stopped by SIGUSR1 after epoch 0 step 0' in out, out[-3000:]


@pytest.mark.parametrize('world_size', [1, 2, 3])
def test_resumable_sampler_continues_the_epoch(world_size):
    n, batch, steps = 50, 4, 3

    def batches(start):
        out = []
        for rank in range(world_size):
            sampler = ResumableSampler(n, world_size, rank, seed=7)
            sampler.set_epoch(5, start=start)
            order = list(sampler)
            out.append([order[i:i + batch] for i in range(0, len(order) - batch + 1, batch)])
        return out

    whole, rest = batches(0), batches(steps * batch * world_size)
    assert all(r == w[steps:] for r, w in zip(rest, whole))  # the remaining batches, in the same order
    seen = sorted(i for rank in whole for b in rank for i in b)
    assert len(set(seen)) == len(seen)  # each sample at most once per epoch
    other = ResumableSampler(n, world_size, 0, seed=7)
    other.set_epoch(6)
    assert list(other) != [i for b in whole[0] for i in b]  # another epoch, another order


SLURM = os.path.join(ROOT, 'tools', 'slurm_train.sh')


def test_slurm_script_arguments(tmp_path):
    def slurm(*argv, **env):
        result = subprocess.run(['bash', SLURM, *argv], env={**ENV, **env}, capture_output=True, text=True)
        return result.returncode, result.stdout, result.stderr.strip()

    code, out, _ = slurm('--help')
    assert code == 0 and 'sbatch' in out and '--resume auto' in out
    code, _, err = slurm('--dataset', 'digits')
    assert code == 2 and err.startswith('slurm_train.sh: error: pass --experiment NAME')
    code, _, err = slurm('--experiment', 'x', '--resume', 'last.pth.tar')
    assert code == 2 and err.startswith('slurm_train.sh: error: do not pass --resume')
    code, _, err = slurm('--experiment', 'x')
    assert code == 2 and err.startswith('slurm_train.sh: error: not in a SLURM job')
    code, out, _ = slurm('/data/imagenet', '--experiment=my run', SLURM_TRAIN_DRY_RUN='1')
    assert code == 0 and out.startswith('srun ') and out.strip().endswith(
        "train.py /data/imagenet --experiment=my\\ run --resume auto"), out


def test_slurm_script_requeues_a_stopped_run_which_then_finishes(tmp_path):
    """The job script with stand-ins for srun (runs the task in place) and scontrol (records the
    requeue): SIGUSR1 to the task as SLURM sends it, exit 75, requeue; the same script again finishes."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    (bin_dir / 'srun').write_text('#!/usr/bin/env bash\necho $$ > "$FAKE_DIR/task.pid"\nshift\nexec "$@"\n')
    (bin_dir / 'scontrol').write_text('#!/usr/bin/env bash\n[ "$1" = show ] && { echo localhost; exit 0; }\n'
                                      'echo "$@" >> "$FAKE_DIR/scontrol.log"\n')
    for tool in ('srun', 'scontrol'):
        (bin_dir / tool).chmod(0o755)
    env = {**ENV, 'PATH': f'{bin_dir}:{os.environ["PATH"]}', 'FAKE_DIR': str(tmp_path), 'SLURM_JOB_ID': '4242',
           'PYTHON': PY}
    argv = ['bash', SLURM, '--dataset', 'digits', '--model', 'dfformer_s18', '--epochs', '2', '-j', '0',
            '--img-size', '32', '-b', '8', '--max-steps-per-epoch', '6', '--log-interval', '1',
            '--output', str(tmp_path / 'out'), '--experiment', 'job']
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if re.search(r'Train: 0 \[   1/6', line) and len(lines) and not (tmp_path / 'signalled').exists():
            os.kill(int((tmp_path / 'task.pid').read_text()), signal.SIGUSR1)
            (tmp_path / 'signalled').touch()
    out = ''.join(lines)
    assert proc.wait(timeout=600) == EXIT_PREEMPTED, out[-3000:]
    # (the signal lands while step 1 ends or during step 2, as the machine's load has it: either is a stop)
    stopped = re.search(r'train\.py: stopped by SIGUSR1 after epoch 0 step ([12])\b', out)
    assert stopped, out[-3000:]
    assert (tmp_path / 'scontrol.log').read_text().split() == ['requeue', '4242']
    result = subprocess.run(argv, env={**env, 'SLURM_RESTART_COUNT': '1'}, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f'from epoch 0 step {int(stopped.group(1)) + 1},' in result.stderr
    assert (tmp_path / 'scontrol.log').read_text().split() == ['requeue', '4242']  # not again


def test_segmentation_sigterm_then_resume_does_each_iteration_once(tmp_path):
    """tools/mm/train.py (iteration-based Semantic FPN, cut to 6 iterations, a checkpoint every
    4): SIGTERM saves the iteration in progress, the pointer names it, --resume (no path) goes on."""
    import json

    from mm_data import make_ade
    make_ade(str(tmp_path / 'data/ade/ADEChallengeData2016'))
    work = tmp_path / 'work'
    cut = ['train_cfg.max_iters=6', 'train_cfg.val_interval=6', 'default_hooks.checkpoint.interval=4',
           'train_dataloader.batch_size=1', 'default_hooks.logger.interval=1', 'model.backbone.init_cfg=None']
    cmd = [PY, os.path.join(ROOT, 'segmentation/tools/train.py'),
           os.path.join(ROOT, 'segmentation/configs/fpn/dfformer_s18_fpn.py'), '--work-dir', str(work),
           '--cfg-options', *cut]
    code, out = _run(cmd, stop_at=r'Iter\(train\) \[1/6\]', cwd=tmp_path)
    assert code == EXIT_PREEMPTED, out[-3000:]
    last = out.strip().splitlines()[-1]
    stopped = re.match(r'stopped by SIGTERM after iteration (\d+): checkpoint (\S+);', last)
    assert stopped and 'Traceback' not in out, last
    assert int(stopped[1]) < 4 and stopped[2] == str(work / f'iter_{stopped[1]}.pth')
    assert (work / 'last_checkpoint').read_text() == stopped[2]
    code, out = _run(cmd + ['--resume'], cwd=tmp_path)
    assert code == 0, out[-3000:]
    assert f'resumed epoch: 0, iter: {stopped[1]}' in out
    logged = [json.loads(line)['iter'] for run in sorted(work.glob('*/vis_data/scalars.json'))
              for line in run.read_text().splitlines() if '"loss"' in line]
    assert logged == [1, 2, 3, 4, 5, 6]
    assert not list(work.glob('*.tmp')) and (work / 'last_checkpoint').read_text() == str(work / 'iter_6.pth')


def test_shards_train_and_validate_as_the_folder(tmp_path):
    """tools/make_shards.py on a tiny ImageNet-style folder; train.py and validate.py read the
    shards (--dataset wds/NAME) and score a checkpoint as on the folder; bad shards are one line."""
    import json
    import tarfile

    import numpy as np
    from PIL import Image
    folder = tmp_path / 'imagenet'
    rng = np.random.RandomState(0)
    for split, count in (('train', 6), ('val', 2)):
        for c in range(3):
            (folder / split / f'n0{c}').mkdir(parents=True)
            for i in range(count):
                Image.fromarray((rng.rand(40, 48, 3) * 80 + c * 80).astype(np.uint8)).save(folder / split / f'n0{c}'
                                                                                          / f'{i}.png')
    shards = tmp_path / 'shards'
    tool = [PY, os.path.join(ROOT, 'tools', 'make_shards.py')]
    code, out = _run(tool + [str(folder), str(shards), '--max-count', '4', '--name', 'tiny'])
    assert code == 0 and 'train: 18 samples in 5 shards' in out and 'validation: 6 samples in 2 shards' in out, out
    assert (shards / 'classes.txt').read_text().split() == ['n00', 'n01', 'n02']
    code, out = _run(tool + ['--verify', str(shards)])
    assert code == 0 and 'train: 18 samples in 5 shards: ok' in out, out

    fast = ['--model', 'dfformer_s18', '-j', '0', '--img-size', '32', '-b', '4', '--epochs', '1', '--warmup-epochs',
            '0', '--cooldown-epochs', '0', '--opt', 'adamw', '--lr', '1e-3', '--output', str(tmp_path / 'out')]
    train, validate = [PY, os.path.join(ROOT, 'train.py')], [PY, os.path.join(ROOT, 'validate.py')]
    code, out = _run(train + [str(shards), '--dataset', 'wds/tiny', '--experiment', 'wds'] + fast)
    assert code == 0, out[-3000:]
    assert 'of 5 per process' in out  # timm's reader: 18 samples rounded up to whole batches of 4
    checkpoint = tmp_path / 'out' / 'wds' / 'last.pth.tar'
    assert torch.load(checkpoint, weights_only=True)['state_dict']['head.fc2.weight'].shape[0] == 3
    top1 = {}
    for name, data in (('folder', [str(folder)]), ('shards', [str(shards), '--dataset', 'wds/tiny'])):
        code, out = _run(validate + data + ['--model', 'dfformer_s18', '--img-size', '32', '-j', '0', '--checkpoint',
                                            str(checkpoint), '--results-file', str(tmp_path / f'{name}.json')])
        assert code == 0, out[-3000:]
        top1[name] = json.loads((tmp_path / f'{name}.json').read_text())['top1']
    assert top1['folder'] == top1['shards']
    summary = (tmp_path / 'out' / 'wds' / 'summary.csv').read_text().splitlines()
    assert float(summary[1].split(',')[3]) == pytest.approx(top1['folder'], abs=1e-3)  # train.py's own evaluation

    # a truncated shard: named before any work; a sample without a label: named when read
    truncated = tmp_path / 'truncated'
    shutil.copytree(shards, truncated)
    with open(truncated / 'tiny-train-000001.tar', 'r+b') as f:
        f.truncate(1024)
    unlabelled = tmp_path / 'unlabelled'
    shutil.copytree(shards, unlabelled)
    shard = unlabelled / 'tiny-train-000002.tar'
    with tarfile.open(shard) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    with tarfile.open(shard, 'w') as tar:
        for member, data in members:
            if member.name != '00000008.cls':
                tar.addfile(member, __import__('io').BytesIO(data))
    info = json.loads((unlabelled / '_info.json').read_text())
    info['splits']['train']['shard_bytes'][2] = os.path.getsize(shard)
    (unlabelled / '_info.json').write_text(json.dumps(info))
    for data, expected in ((truncated, f'{truncated / "tiny-train-000001.tar"}: truncated or altered shard'),
                           (unlabelled, f'{shard}: sample 00000008 has no class index (.cls)')):
        for cmd in (tool + ['--verify', str(data)],
                    train + [str(data), '--dataset', 'wds/tiny', '--experiment', f'bad-{data.name}'] + fast):
            code, out = _run(cmd)
            last = out.strip().splitlines()[-1]
            assert code == 2 and 'Traceback' not in out and expected in last, out[-3000:]


def _image_folder(root, classes, per_class):
    import numpy as np
    from PIL import Image
    rng = np.random.RandomState(0)
    for split in ('train', 'val'):
        for c in range(classes):
            (root / split / f'n{c:02d}').mkdir(parents=True)
            for i in range(per_class):
                Image.fromarray((rng.rand(40, 48, 3) * 80 + c * 10).astype(np.uint8)).save(
                    root / split / f'n{c:02d}' / f'{i}.png')


def test_each_reader_of_two_processes_reads_its_own_shards_once(tmp_path):
    """--shards-multiple spreads the samples evenly over a shard count the readers divide: with 2
    processes each reads its own shards and every sample once per epoch (12 one-image classes, so
    the label names the sample), train.py runs on both, validate.py on 2 processes scores as on the
    folder; too few shards for the readers is one line before any work."""
    import json

    from engine.data import build_dataset
    folder, shards = tmp_path / 'imagenet', tmp_path / 'shards'
    _image_folder(folder, 12, 1)
    tool = [PY, os.path.join(ROOT, 'tools', 'make_shards.py'), str(folder), str(shards), '--name', 'tiny']
    code, out = _run(tool + ['--max-count', '5', '--shards-multiple', '2'])
    assert code == 0 and 'train: 12 samples in 4 shards' in out and 'validation: 12 samples in 4 shards' in out, out
    info = json.loads((shards / '_info.json').read_text())
    assert info['splits']['train']['shard_lengths'] == [3, 3, 3, 3]

    for epoch in (0, 1):
        seen = []
        for rank in (0, 1):
            dataset = build_dataset('wds/tiny', str(shards), 'train', is_training=True, batch_size=2, seed=1,
                                    processes=2)
            dataset.reader.dist_rank, dataset.reader.dist_num_replicas = rank, 2  # (read before the first sample)
            dataset.set_epoch(epoch)
            seen.append(sorted(target for _, target in dataset))
        assert len(seen[0]) == len(seen[1]) == 6 and sorted(seen[0] + seen[1]) == list(range(12)), seen

    port = 29500 + (os.getpid() + 7) % 1000
    env = {'PYTHON': PY, 'MASTER_PORT': str(port)}
    fast = ['--dataset', 'wds/tiny', '--model', 'dfformer_s18', '-j', '0', '--img-size', '32', '--epochs', '1',
            '--warmup-epochs', '0', '--cooldown-epochs', '0', '--opt', 'adamw', '--lr', '1e-3',
            '--output', str(tmp_path / 'out')]
    code, out = _run(['bash', os.path.join(ROOT, 'distributed_train.sh'), '2', str(shards), '-b', '3',
                      '--experiment', 'wds2'] + fast, env=env)
    assert code == 0, out[-3000:]
    assert '2 steps per epoch (of 2 per process, world size 2)' in out, out[-3000:]
    checkpoint = tmp_path / 'out' / 'wds2' / 'last.pth.tar'
    scores = {}
    for name, cmd in (('folder', [PY, os.path.join(ROOT, 'validate.py'), str(folder)]),
                      ('shards', ['bash', os.path.join(ROOT, 'distributed_validate.sh'), '2', str(shards),
                                  '--dataset', 'wds/tiny'])):
        code, out = _run(cmd + ['--model', 'dfformer_s18', '--img-size', '32', '-j', '0', '-b', '3',
                                '--checkpoint', str(checkpoint), '--results-file', str(tmp_path / f'{name}.json')],
                         env={**env, 'MASTER_PORT': str(port + 1)})
        assert code == 0, out[-3000:]
        scores[name] = json.loads((tmp_path / f'{name}.json').read_text())
    assert [scores['shards'][k] for k in ('top1', 'top5')] == [scores['folder'][k] for k in ('top1', 'top5')]
    assert scores['shards']['loss'] == pytest.approx(scores['folder']['loss'], abs=1e-5)

    code, out = _run([PY, os.path.join(ROOT, 'train.py'), str(shards), '-b', '3', '--experiment', 'many'] + fast
                     + ['-j', '5'])
    last = out.strip().splitlines()[-1]
    assert code == 2 and 'Traceback' not in out, out[-3000:]
    assert last == (f'train.py: error: {shards}: 4 train shards for 5 readers (1 process x 5 loader workers): every '
                    'reader needs a shard of its own; pass -j 4, or make the shards with --shards-multiple 5 '
                    '(tools/make_shards.py)'), last


def test_shard_count_the_readers_do_not_divide_is_a_warning(tmp_path, caplog):
    from engine.data import build_dataset
    folder, shards = tmp_path / 'imagenet', tmp_path / 'shards'
    _image_folder(folder, 3, 2)
    code, out = _run([PY, os.path.join(ROOT, 'tools', 'make_shards.py'), str(folder), str(shards), '--max-count', '2'])
    assert code == 0 and 'train: 6 samples in 3 shards' in out, out
    build_dataset('wds/imagenet', str(shards), 'train', is_training=True, processes=1, workers=2)
    assert ('3 train shards for 2 readers (1 process x 2 loader workers): readers get unequal shares, so each epoch '
            'some samples are read twice and others not at all; make the shards with --shards-multiple 2') \
        in caplog.text

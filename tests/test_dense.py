"""Semantic FPN (mmseg 1.x) and RetinaNet / Mask R-CNN (mmdet 3.x) with the DFFormer backbone."""
import glob
import os
import subprocess
import sys

import pytest
import torch
from conftest import ROOT
from mm_data import make_ade, make_coco
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmadapter import DFFormerBackbone
from models import CheckpointError, resize_filter_bases

SEG_CONFIGS = sorted(glob.glob(os.path.join(ROOT, 'segmentation/configs/fpn/*.py')))
DET_CONFIGS = sorted(glob.glob(os.path.join(ROOT, 'detection/configs/*/*.py')))
SIZES = ('s18', 's36', 'm36', 'b36')
ENV = {**os.environ, 'OMP_NUM_THREADS': '2', 'PYTHONWARNINGS': 'ignore'}


def _build(config, scope):
    from mmengine.registry import MODELS
    cfg = Config.fromfile(config)
    cfg.model.backbone.init_cfg = None
    init_default_scope(scope)
    return cfg, MODELS.build(cfg.model)


@pytest.fixture(scope='module')
def ade_root(tmp_path_factory):
    return make_ade(str(tmp_path_factory.mktemp('ade') / 'ADEChallengeData2016'))


@pytest.fixture(scope='module')
def coco_root(tmp_path_factory):
    return make_coco(str(tmp_path_factory.mktemp('coco') / 'coco')) + '/'


def _shipped_train_step(cfg, model, data_root, backward=True):
    """One training iteration as mmengine's Runner does it (the config's dataloader, pipeline,
    data preprocessor, model and optimizer wrapper), with only the data location, batch size,
    worker count and (detection) image scale changed. Without `backward`, the loss only."""
    from mmengine.optim import build_optim_wrapper
    from mmengine.runner import Runner

    from mmadapter.runner import set_mixed_precision
    loader = dict(cfg.train_dataloader, batch_size=1, num_workers=0, persistent_workers=False)
    loader['dataset'] = dict(loader['dataset'], data_root=data_root)
    if cfg.default_scope == 'mmdet':
        loader['dataset']['ann_file'] = data_root + 'annotations/instances_train2017.json'
        loader['dataset']['data_prefix'] = dict(img='train2017/')
        loader['dataset']['pipeline'][2]['scale'] = (320, 192)
    set_mixed_precision(cfg, amp=False)
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    model.train()
    # model.train_step, less the zeroing of the gradients (checked below)
    data = model.data_preprocessor(next(iter(Runner.build_dataloader(loader))), True)
    with torch.set_grad_enabled(backward):
        loss, log_vars = model.parse_losses(model(**data, mode='loss'))
    assert torch.isfinite(loss), log_vars
    if not backward:
        return
    loss.backward()
    optim_wrapper.step()
    missing = [n for n, p in model.backbone.named_parameters() if p.grad is None]
    assert not missing, f'no gradient for {missing} (unused parameters break DDP)'


def test_config_sets_are_complete():
    names = {os.path.basename(c) for c in SEG_CONFIGS + DET_CONFIGS}
    for family in ('dfformer', 'cdfformer'):
        for size in SIZES:
            expected = {f'{family}_{size}_{task}.py' for task in ('fpn', 'retinanet', 'mask_rcnn')}
            assert expected <= names


@pytest.mark.parametrize('config', SEG_CONFIGS, ids=os.path.basename)
def test_segmentation_config_trains_as_shipped(config, ade_root):
    cfg, model = _build(config, 'mmseg')
    arch = os.path.basename(config).rsplit('_', 1)[0]
    assert isinstance(model.backbone, DFFormerBackbone) and model.backbone.arch == arch
    assert model.backbone.img_size == (512, 512)
    assert cfg.optim_wrapper.optimizer == dict(type='AdamW', lr=2e-4, weight_decay=1e-4)
    assert cfg.train_cfg.max_iters == 40000 and cfg.train_dataloader.batch_size == 4
    assert cfg.param_scheduler[0]['power'] == 0.9 and cfg.param_scheduler[0]['eta_min'] == 0
    assert cfg.train_dataloader.dataset.data_root == 'data/ade/ADEChallengeData2016'
    assert model.decode_head.num_classes == 150 and model.decode_head.channels == 128
    assert cfg.model.neck.in_channels == model.backbone.dims
    # the shipped data preprocessor pads to 512x512: the larger sizes' backward is costly on CPU,
    # and their layers are those of s18 in more blocks
    _shipped_train_step(cfg, model, ade_root, backward='_s18_' in config)


@pytest.mark.parametrize('config', DET_CONFIGS, ids=os.path.basename)
def test_detection_config_trains_as_shipped(config, coco_root):
    cfg, model = _build(config, 'mmdet')
    retina = 'retinanet' in config
    assert isinstance(model.backbone, DFFormerBackbone) and model.backbone.img_size == (800, 800)
    assert isinstance(model.backbone.norm0, torch.nn.Identity) == retina
    assert cfg.optim_wrapper.optimizer == dict(type='AdamW', lr=1e-4, weight_decay=0.05)
    assert cfg.train_cfg.max_epochs == 12 and cfg.param_scheduler[1]['milestones'] == [8, 11]
    assert cfg.train_dataloader.dataset.data_root == 'data/coco/'
    assert cfg.model.neck.in_channels == model.backbone.dims
    _shipped_train_step(cfg, model, coco_root)


def test_segmentor_forward_backward_odd_size():
    _, model = _build(os.path.join(ROOT, 'segmentation/configs/fpn/cdfformer_s18_fpn.py'), 'mmseg')
    x = torch.randn(2, 3, 97, 131)
    feats = model.backbone(x)
    assert [f.shape[-2:] for f in feats] == [(24, 33), (12, 17), (6, 9), (3, 5)]
    out = model._forward(x)
    out.mean().backward()
    assert all(p.grad is not None for p in model.backbone.parameters())


@pytest.mark.parametrize('detector', ['retinanet', 'mask_rcnn'])
def test_detector_loss_and_predict_odd_size(detector):
    from mmdet.testing import demo_mm_inputs
    _, model = _build(os.path.join(ROOT, f'detection/configs/{detector}/dfformer_s18_{detector}.py'), 'mmdet')
    data = demo_mm_inputs(2, [(3, 99, 141), (3, 117, 83)], num_items=[3, 2], num_classes=80,
                          with_mask=detector == 'mask_rcnn')
    data = model.data_preprocessor(data, True)
    losses = model.loss(data['inputs'], data['data_samples'])
    total = sum(v for k, v in losses.items() if 'loss' in k for v in (v if isinstance(v, list) else [v]))
    total.backward()
    used = [p.grad is not None for n, p in model.backbone.named_parameters()]
    assert all(used), 'every backbone parameter gets a gradient (no unused parameters under DDP)'
    model.eval()
    with torch.no_grad():
        data = model.data_preprocessor(demo_mm_inputs(1, [(3, 101, 77)], with_mask=detector == 'mask_rcnn'), False)
        results = model.predict(data['inputs'], data['data_samples'])
    assert len(results) == 1 and hasattr(results[0], 'pred_instances')


def test_imagenet_checkpoint_into_backbone(tmp_path):
    import timm
    classifier = timm.create_model('dfformer_s18')
    path = tmp_path / 'dfformer_s18.pth'
    torch.save(classifier.state_dict(), path)
    backbone = DFFormerBackbone('dfformer_s18', img_size=512, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    backbone.init_weights()
    state = backbone.state_dict()
    key = 'stages.1.2.token_mixer.complex_weights'
    assert state[key].shape == (64, 33, 4, 2)
    assert torch.allclose(state[key], resize_filter_bases(classifier.state_dict()[key], (64, 33)))
    assert torch.equal(state['stages.3.2.mlp.fc2.weight'], classifier.state_dict()['stages.3.2.mlp.fc2.weight'])


def test_unavailable_checkpoint_is_an_error_not_random_init(tmp_path):
    with pytest.raises(CheckpointError, match='no such checkpoint file'):
        DFFormerBackbone(init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'missing.pth'))).init_weights()
    with pytest.raises(CheckpointError, match='cannot download .*init_cfg=None'):
        DFFormerBackbone(init_cfg=dict(type='Pretrained', checkpoint='http://127.0.0.1:9/w.pth')).init_weights()
    wrong = tmp_path / 'cdf.pth'
    torch.save(__import__('timm').create_model('cdfformer_s18').state_dict(), wrong)
    with pytest.raises(CheckpointError, match='does not fit'):
        DFFormerBackbone('dfformer_s18', init_cfg=dict(type='Pretrained', checkpoint=str(wrong))).init_weights()


def test_fork_last3_environment_switch(monkeypatch):
    monkeypatch.setenv('FORK_LAST3', '1')
    assert isinstance(DFFormerBackbone().norm0, torch.nn.Identity)
    monkeypatch.delenv('FORK_LAST3')
    assert isinstance(DFFormerBackbone().norm0, torch.nn.LayerNorm)


# The only overrides a user with another machine makes: data location (the tests put the data at
# the configs' standard paths under their working folder), iteration / epoch count, batch size,
# image scale and init_cfg (the pretrained file is not here). Nothing else: no model, data
# preprocessor, pipeline or test-time setting of a shipped config is changed.
NO_PRETRAINED = ['model.backbone.init_cfg=None']
SEG_CUT = ['train_cfg.max_iters=4', 'train_cfg.val_interval=4', 'default_hooks.checkpoint.interval=2',
           'train_dataloader.batch_size=1', 'default_hooks.logger.interval=1'] + NO_PRETRAINED
# COCO's 1333x800 scale cut to 320x192 (train resize, test resize: the pipelines' Resize steps)
DET_CUT = ['train_cfg.max_epochs=1', 'train_dataloader.batch_size=1', 'default_hooks.logger.interval=1',
           'train_dataloader.dataset.pipeline.2.scale=(320,192)', 'val_dataloader.dataset.pipeline.1.scale=(320,192)',
           'test_dataloader.dataset.pipeline.1.scale=(320,192)'] + NO_PRETRAINED


def _config(task, name):
    return os.path.join(ROOT, task, 'configs', name)


def _tool(tool, *args, cwd, env=None, expect_ok=True, timeout=900):
    """Run a shipped tool (a path under the repo) as a user does, as a subprocess."""
    cmd = ['bash', os.path.join(ROOT, tool)] if tool.endswith('.sh') else [sys.executable, os.path.join(ROOT, tool)]
    result = subprocess.run(cmd + [str(a) for a in args], cwd=cwd, env={**ENV, 'PYTHON': sys.executable, **(env or {})},
                            capture_output=True, text=True, timeout=timeout)
    output = result.stdout + result.stderr
    if expect_ok:
        assert result.returncode == 0, output[-4000:]
    return result, output


def _port():
    return str(29600 + os.getpid() % 1000)


def test_segmentation_authors_command_resume_and_test(tmp_path):
    """The authors' command, verbatim but for the process count (2 gloo processes) and the cut
    iterations; then --resume from a Runner checkpoint and test.py, all under weights_only."""
    make_ade(str(tmp_path / 'data/ade/ADEChallengeData2016'))
    config = _config('segmentation', 'fpn/dfformer_s18_fpn.py')
    work = tmp_path / 'work_dir/dfformer_s18_fpn'
    _tool('segmentation/tools/dist_train.sh', config, 2, '--work-dir', work, '--seed', 42, '--deterministic',
          '--cfg-options', *SEG_CUT, cwd=tmp_path, env={'OMP_NUM_THREADS': '1', 'PORT': _port()})
    assert (work / 'iter_4.pth').exists()
    assert not list(work.glob('*.tmp')), 'checkpoints are written through a temporary file, then renamed'
    _, log = _tool('segmentation/tools/train.py', config, '--work-dir', work, '--resume', work / 'iter_2.pth',
                   '--cfg-options', *SEG_CUT, cwd=tmp_path)
    assert 'resumed epoch: 0, iter: 2' in log
    _, log = _tool('segmentation/tools/test.py', config, work / 'iter_4.pth', '--work-dir', work, cwd=tmp_path)
    assert 'mIoU:' in log


@pytest.mark.parametrize('detector', ['retinanet', 'mask_rcnn'])
def test_detection_train_and_test(tmp_path, detector):
    make_coco(str(tmp_path / 'data/coco'))
    config = _config('detection', f'{detector}/dfformer_s18_{detector}.py')
    work = tmp_path / 'work_dir'
    if detector == 'retinanet':
        # the authors' command: FORK_LAST3=1 and dist_train.sh with 2 gloo processes
        _tool('detection/tools/dist_train.sh', config, 2, '--work-dir', work, '--seed', 42, '--deterministic',
              '--cfg-options', *DET_CUT, cwd=tmp_path, env={'FORK_LAST3': '1', 'OMP_NUM_THREADS': '1', 'PORT': _port()})
    else:
        _tool('detection/tools/train.py', config, '--work-dir', work, '--seed', 42, '--deterministic',
              '--cfg-options', *DET_CUT, cwd=tmp_path)
    # One epoch from random init scores nothing above the shipped score threshold, so the
    # evaluator would see no detection: make the trained checkpoint's classifiers confident.
    from mmadapter.compat import runner_checkpoints_loadable
    with runner_checkpoints_loadable():
        checkpoint = torch.load(work / 'epoch_1.pth', map_location='cpu', weights_only=True)
    for key, value in checkpoint['state_dict'].items():
        if key.endswith(('retina_cls.bias', 'rpn_cls.bias')):
            value.fill_(10.)
        elif key.endswith('fc_cls.bias'):
            value[0] = 10.
    torch.save(checkpoint, work / 'confident.pth')
    _, log = _tool('detection/tools/test.py', config, work / 'confident.pth', '--work-dir', work,
                   '--cfg-options', *DET_CUT[3:], cwd=tmp_path)
    assert 'bbox_mAP' in log
    if detector == 'mask_rcnn':
        assert 'segm_mAP' in log


def test_get_flops_tools():
    _, log = _tool('segmentation/tools/get_flops.py', _config('segmentation', 'fpn/dfformer_s18_fpn.py'),
                   '--shape', 256, 256, cwd=ROOT)
    assert 'MACs' in log


def test_segmentation_kill_then_resume_keeps_each_iteration_once(tmp_path):
    """kill -9 in the middle of a run, then --resume (the latest checkpoint in the work dir):
    the run finishes, each iteration is logged once (the killed run's up to its checkpoint,
    the resumed run's after it) and the final checkpoint loads."""
    import json
    import signal
    import time
    make_ade(str(tmp_path / 'data/ade/ADEChallengeData2016'))
    work = tmp_path / 'work'
    cut = SEG_CUT + ['default_hooks.checkpoint.interval=1']
    config = _config('segmentation', 'fpn/dfformer_s18_fpn.py')
    cmd = [sys.executable, os.path.join(ROOT, 'segmentation/tools/train.py'), config, '--work-dir', str(work),
           '--cfg-options', *cut]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while not (work / 'iter_2.pth').exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (work / 'iter_4.pth').exists(), 'the run was killed before it finished'
    from mmadapter.compat import runner_checkpoints_loadable
    with runner_checkpoints_loadable():  # whatever the kill interrupted, no checkpoint is partial
        for path in work.glob('iter_*.pth'):
            torch.load(path, map_location='cpu', weights_only=True)
    _tool('segmentation/tools/train.py', config, '--work-dir', work, '--resume', '--cfg-options', *cut, cwd=tmp_path)
    runs = sorted(work.glob('*/vis_data/scalars.json'))
    assert len(runs) == 2
    logged = []
    resumed_from = None
    for i, run in enumerate(runs):
        iters = [json.loads(line)['iter'] for line in run.read_text().splitlines() if '"loss"' in line]
        if i == 1:
            resumed_from = iters[0] - 1
            logged = [it for it in logged if it <= resumed_from]  # the killed run past its last checkpoint
        logged += iters
    assert logged == [1, 2, 3, 4], (resumed_from, logged)
    assert 'mIoU' in _tool('segmentation/tools/test.py', config, work / 'iter_4.pth', '--work-dir', work,
                           cwd=tmp_path)[1]
    assert not list(work.glob('*.tmp'))


def _one_line_error(result, output, *expected):
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert result.returncode != 0, output[-3000:]
    assert 'Traceback' not in output, output[-3000:]
    for text in expected:
        assert text in lines[-1], lines[-1]
    return lines[-1]


def test_tools_bad_inputs_one_line(tmp_path, ade_root):
    seg = _config('segmentation', 'fpn/dfformer_s18_fpn.py')
    # data where the config expects it is missing
    result, output = _tool('segmentation/tools/train.py', seg, '--work-dir', tmp_path / 'w', cwd=tmp_path,
                           expect_ok=False)
    _one_line_error(result, output, 'data_root data/ade/ADEChallengeData2016 does not exist', '--cfg-options')
    # a work dir that is a file
    (tmp_path / 'afile').write_text('x')
    result, output = _tool('segmentation/tools/test.py', seg, tmp_path / 'afile', '--work-dir', tmp_path / 'afile',
                           cwd=tmp_path, expect_ok=False)
    _one_line_error(result, output, 'is a file')
    # a checkpoint of another model (today: mIoU 0, exit 0), a truncated one, a text file
    data = ['--cfg-options', f'test_dataloader.dataset.data_root={ade_root}']
    other = tmp_path / 'other.pth'
    _, cdf = _build(_config('segmentation', 'fpn/cdfformer_s18_fpn.py'), 'mmseg')
    torch.save({'state_dict': cdf.state_dict(), 'meta': {}}, other)
    result, output = _tool('segmentation/tools/test.py', seg, other, '--work-dir', tmp_path / 'w', *data,
                           cwd=tmp_path, expect_ok=False)
    _one_line_error(result, output, str(other), 'does not fit')
    truncated = tmp_path / 'truncated.pth'
    truncated.write_bytes(other.read_bytes()[:50_000])
    for bad in (truncated, tmp_path / 'afile'):
        result, output = _tool('segmentation/tools/test.py', seg, bad, '--work-dir', tmp_path / 'w', *data,
                               cwd=tmp_path, expect_ok=False)
        _one_line_error(result, output, str(bad))
    # a missing config; a missing checkpoint
    result, output = _tool('detection/tools/train.py', tmp_path / 'nope.py', cwd=tmp_path, expect_ok=False)
    _one_line_error(result, output, 'does not exist')
    result, output = _tool('segmentation/tools/test.py', seg, tmp_path / 'nope.pth', cwd=tmp_path, expect_ok=False)
    _one_line_error(result, output, 'nope.pth does not exist')


@pytest.mark.parametrize('workers', [0, 2])
def test_corrupt_image_names_the_file(tmp_path, workers):
    root = tmp_path / 'data/ade/ADEChallengeData2016'
    make_ade(str(root))
    broken = root / 'images/training/ADE_training_00000001.jpg'
    broken.write_bytes(b'not an image')
    result, output = _tool('segmentation/tools/train.py', _config('segmentation', 'fpn/dfformer_s18_fpn.py'),
                           '--work-dir', tmp_path / 'w', '--cfg-options', *SEG_CUT,
                           f'train_dataloader.num_workers={workers}', 'train_dataloader.batch_size=4',
                           cwd=tmp_path, expect_ok=False)
    _one_line_error(result, output, 'images/training/ADE_training_00000001.jpg', 'remove or replace')

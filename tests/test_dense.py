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


def test_config_sets_are_complete():
    names = {os.path.basename(c) for c in SEG_CONFIGS + DET_CONFIGS}
    for family in ('dfformer', 'cdfformer'):
        for size in SIZES:
            expected = {f'{family}_{size}_{task}.py' for task in ('fpn', 'retinanet', 'mask_rcnn')}
            assert expected <= names


@pytest.mark.parametrize('config', SEG_CONFIGS, ids=os.path.basename)
def test_segmentation_config_builds(config):
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


@pytest.mark.parametrize('config', DET_CONFIGS, ids=os.path.basename)
def test_detection_config_builds(config):
    cfg, model = _build(config, 'mmdet')
    retina = 'retinanet' in config
    assert isinstance(model.backbone, DFFormerBackbone) and model.backbone.img_size == (800, 800)
    assert isinstance(model.backbone.norm0, torch.nn.Identity) == retina
    assert cfg.optim_wrapper.optimizer == dict(type='AdamW', lr=1e-4, weight_decay=0.05)
    assert cfg.train_cfg.max_epochs == 12 and cfg.param_scheduler[1]['milestones'] == [8, 11]
    assert cfg.train_dataloader.dataset.data_root == 'data/coco/'
    assert cfg.model.neck.in_channels == model.backbone.dims


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


SEG_TINY = '''_base_ = {base!r}
crop = (64, 64)
train_pipeline = [
    dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=(128, 64), ratio_range=(0.8, 1.2), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop, cat_max_ratio=0.75), dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')]
test_pipeline = [
    dict(type='LoadImageFromFile'), dict(type='Resize', scale=(128, 72), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True), dict(type='PackSegInputs')]
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(num_workers=0, persistent_workers=False, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
model = dict(data_preprocessor=dict(size=crop))
train_cfg = dict(max_iters=4, val_interval=4)
default_hooks = dict(checkpoint=dict(interval=2), logger=dict(interval=1), visualization=dict(draw=False))
'''

DET_TINY = '''_base_ = {base!r}
train_pipeline = [
    dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True, with_mask={mask}),
    dict(type='Resize', scale=(128, 96), keep_ratio=True), dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')]
test_pipeline = [
    dict(type='LoadImageFromFile'), dict(type='Resize', scale=(128, 96), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask={mask}),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))]
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(num_workers=0, persistent_workers=False, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file='data/coco/annotations/instances_val2017.json')
test_evaluator = val_evaluator
model = dict(test_cfg={test_cfg})
train_cfg = dict(max_epochs=1)
default_hooks = dict(logger=dict(interval=1))
'''


def _run(tool, *args, cwd):
    result = subprocess.run([sys.executable, os.path.join(ROOT, tool), *args], cwd=cwd, env=ENV,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return result.stdout + result.stderr


def test_segmentation_train_resume_test_tools(tmp_path):
    """The authors' command line (single process): data at mmseg's standard data/ade path."""
    make_ade(str(tmp_path / 'data/ade/ADEChallengeData2016'))
    config = tmp_path / 'tiny_fpn.py'
    config.write_text(SEG_TINY.format(base=os.path.join(ROOT, 'segmentation/configs/fpn/dfformer_s18_fpn.py')))
    work = tmp_path / 'work_dir'
    # the authors' command form, through torchrun: 2 gloo processes on CPU
    result = subprocess.run(
        ['bash', os.path.join(ROOT, 'segmentation/tools/dist_train.sh'), str(config), '2', '--work-dir', str(work),
         '--seed', '42', '--deterministic', '--cfg-options', 'model.backbone.init_cfg=None'],
        cwd=tmp_path, env={**ENV, 'OMP_NUM_THREADS': '1', 'PYTHON': sys.executable,
                           'MASTER_PORT': str(29600 + os.getpid() % 1000)},
        capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert (work / 'iter_4.pth').exists()
    # our Runner checkpoints reload for resume and test with weights_only=True
    log = _run('segmentation/tools/train.py', str(config), '--work-dir', str(work),
               '--resume', str(work / 'iter_2.pth'), '--cfg-options', 'model.backbone.init_cfg=None', cwd=tmp_path)
    assert 'resumed epoch: 0, iter: 2' in log
    log = _run('segmentation/tools/test.py', str(config), str(work / 'iter_4.pth'), '--work-dir', str(work),
               cwd=tmp_path)
    assert 'mIoU:' in log


@pytest.mark.parametrize('detector', ['retinanet', 'mask_rcnn'])
def test_detection_train_test_tools(tmp_path, detector):
    make_coco(str(tmp_path / 'data/coco'))
    mask = detector == 'mask_rcnn'
    test_cfg = ("dict(rpn=dict(nms_pre=100, max_per_img=50, nms=dict(type='nms', iou_threshold=0.7), "
                "min_bbox_size=0), rcnn=dict(score_thr=0.0, nms=dict(type='nms', iou_threshold=0.5), "
                "max_per_img=20, mask_thr_binary=0.5))"
                if mask else "dict(score_thr=0.0, max_per_img=20)")
    config = tmp_path / f'tiny_{detector}.py'
    config.write_text(DET_TINY.format(
        base=os.path.join(ROOT, f'detection/configs/{detector}/dfformer_s18_{detector}.py'), mask=mask,
        test_cfg=test_cfg))
    if mask:
        with open(config, 'a') as f:
            f.write("val_evaluator = dict(metric=['bbox', 'segm'])\ntest_evaluator = val_evaluator\n")
    work = tmp_path / 'work_dir'
    env_cmd = ['--cfg-options', 'model.backbone.init_cfg=None']
    _run('detection/tools/train.py', str(config), '--work-dir', str(work), '--seed', '42', '--deterministic',
         *env_cmd, cwd=tmp_path)
    log = _run('detection/tools/test.py', str(config), str(work / 'epoch_1.pth'), '--work-dir', str(work), cwd=tmp_path)
    assert 'bbox_mAP' in log
    if mask:
        assert 'segm_mAP' in log


def test_get_flops_tools():
    log = _run('segmentation/tools/get_flops.py', os.path.join(ROOT, 'segmentation/configs/fpn/dfformer_s18_fpn.py'),
               '--shape', '256', '256', cwd=ROOT)
    assert 'MACs' in log

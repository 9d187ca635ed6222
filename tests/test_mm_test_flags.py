"""tools/mm/test.py (segmentation/tools/test.py, detection/tools/test.py) with the options of mmseg
1.2.2's and mmdet 3.3.0's tools/test.py: --out, --show-dir, --show, --wait-time, --tta.

Each task's tool runs as a subprocess on a tiny data set at the config's standard path under a
working folder, with a checkpoint of the shipped model (random weights, saved, not trained). The only
overrides: test image scale and loader worker count (no model, data preprocessor or TTA setting)."""
import os
import pickle
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import ROOT, load_script
from mm_data import make_ade, make_coco
from mmengine.config import Config
from PIL import Image

from mmadapter.runner import ConfigError

# one thread: beside other work on 2 cores, two OpenMP threads spin-wait (a TTA run took 8x longer)
ENV = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONWARNINGS': 'ignore'}
ENV.pop('DISPLAY', None)
ENV.pop('WAYLAND_DISPLAY', None)
SEG = os.path.join(ROOT, 'segmentation/configs/fpn/dfformer_s18_fpn.py')
RETINA = os.path.join(ROOT, 'detection/configs/retinanet/dfformer_s18_retinanet.py')
MASK_RCNN = os.path.join(ROOT, 'detection/configs/mask_rcnn/dfformer_s18_mask_rcnn.py')
SEG_CUT = ['test_dataloader.num_workers=0', 'test_dataloader.dataset.pipeline.1.scale=(1024,256)']
DET_CUT = ['test_dataloader.num_workers=0', 'test_dataloader.dataset.pipeline.1.scale=(320,192)']
# retinanet_tta.py's three scales (1333x800, 666x400, 2000x1200) cut as DET_CUT cuts the test scale
DET_TTA_CUT = ['tta_pipeline.1.transforms.0.0.scale=(320,192)', 'tta_pipeline.1.transforms.0.1.scale=(160,96)',
               'tta_pipeline.1.transforms.0.2.scale=(480,288)']


def _checkpoint(config, scope, path):
    """The shipped model with random weights; RetinaNet's classifier made confident, so that the
    COCO metric sees detections above the score threshold."""
    from mmengine.registry import MODELS, init_default_scope
    cfg = Config.fromfile(config)
    cfg.model.backbone.init_cfg = None
    init_default_scope(scope)
    state = MODELS.build(cfg.model).state_dict()
    for key, value in state.items():
        if key.endswith('retina_cls.bias'):
            value.fill_(10.)
    torch.save({'state_dict': state, 'meta': {}}, path)
    return path


@pytest.fixture(scope='module')
def seg_dir(tmp_path_factory):
    """A working folder with ADE20K's validation set (2 images, no training set: testing needs
    none) at data/ade/ and a checkpoint."""
    cwd = tmp_path_factory.mktemp('seg')
    root = make_ade(str(cwd / 'data/ade/ADEChallengeData2016'))
    for folder in ('images', 'annotations'):
        shutil.rmtree(os.path.join(root, folder, 'training'))
    _checkpoint(SEG, 'mmseg', cwd / 'fpn.pth')
    return cwd


@pytest.fixture(scope='module')
def det_dir(tmp_path_factory):
    """A working folder with COCO's validation set (2 images, no training set) at data/coco/ and a
    RetinaNet checkpoint."""
    cwd = tmp_path_factory.mktemp('det')
    root = make_coco(str(cwd / 'data/coco'))
    shutil.rmtree(os.path.join(root, 'train2017'))
    os.unlink(os.path.join(root, 'annotations/instances_train2017.json'))
    _checkpoint(RETINA, 'mmdet', cwd / 'retinanet.pth')
    return cwd


def _test_tool(task, *args, cwd, expect_ok=True):
    cmd = [sys.executable, os.path.join(ROOT, task, 'tools/test.py')] + [str(a) for a in args]
    result = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600)
    output = result.stdout + result.stderr
    if expect_ok:
        assert result.returncode == 0, output[-4000:]
    return result, output


def _no_partial_files(folder):
    assert not list(folder.rglob('*.tmp')), 'files are written through a temporary file, then renamed'


@pytest.fixture(scope='module')
def seg_run(seg_dir):
    """One segmentation test run with --out and --show-dir."""
    _, log = _test_tool('segmentation', SEG, 'fpn.pth', '--work-dir', 'work', '--out', 'preds',
                        '--show-dir', 'drawn', '--cfg-options', *SEG_CUT, cwd=seg_dir)
    return log


@pytest.fixture(scope='module')
def det_run(det_dir):
    """One detection test run with --out and --show-dir."""
    _, log = _test_tool('detection', RETINA, 'retinanet.pth', '--work-dir', 'work', '--out', 'results/preds.pkl',
                        '--show-dir', 'drawn', '--cfg-options', *DET_CUT, cwd=det_dir)
    return log


def _names(folder, suffix):
    return sorted(os.path.splitext(f)[0] for f in os.listdir(folder) if f.endswith(suffix))


def test_seg_out_writes_one_label_map_per_image(seg_dir, seg_run):
    assert 'mIoU' in seg_run
    images = seg_dir / 'data/ade/ADEChallengeData2016/images/validation'
    assert _names(seg_dir / 'preds', '.png') == _names(images, '.jpg')
    for name in _names(images, '.jpg'):
        labels = np.array(Image.open(seg_dir / 'preds' / f'{name}.png'))
        assert labels.shape == np.array(Image.open(images / f'{name}.jpg')).shape[:2]
        assert labels.dtype == np.uint8
        # ADE20K's label values: the model's classes 0..149 written as 1..150 (0 is "other")
        assert 1 <= labels.min() and labels.max() <= 150
    _no_partial_files(seg_dir / 'preds')


def test_seg_show_dir_draws_every_image(seg_dir, seg_run):
    drawn = seg_dir / 'drawn/vis_data/vis_image'
    assert f'drawn predictions are in {os.path.join("drawn", "vis_data", "vis_image")}' in seg_run
    files = sorted(os.listdir(drawn))
    assert len(files) == 2 and all(f.startswith('test_ADE_validation_') for f in files), files
    for f in files:
        # mmseg draws the ground truth and the prediction side by side on the 72x96 image
        assert np.array(Image.open(drawn / f)).shape == (72, 2 * 96, 3)


def test_det_out_writes_a_pickle_with_one_entry_per_image(det_dir, det_run):
    assert 'bbox_mAP' in det_run
    with open(det_dir / 'results/preds.pkl', 'rb') as f:
        results = pickle.load(f)
    assert sorted(os.path.basename(r['img_path']) for r in results) == sorted(os.listdir(det_dir / 'data/coco/val2017'))
    for r in results:
        boxes = r['pred_instances']['bboxes']
        assert boxes.shape[1] == 4 and len(boxes) == len(r['pred_instances']['scores']) > 0
        assert 'gt_instances' not in r
    _no_partial_files(det_dir / 'results')


def test_det_show_dir_draws_every_image(det_dir, det_run):
    # mmdet's place for a relative --show-dir: WORK_DIR/<timestamp>/D
    drawn = list((det_dir / 'work').glob('*/drawn'))
    assert len(drawn) == 1
    assert f'drawn predictions are in {drawn[0]}' in det_run
    assert sorted(os.listdir(drawn[0])) == sorted(os.listdir(det_dir / 'data/coco/val2017'))


def test_seg_tta(seg_dir):
    _, log = _test_tool('segmentation', SEG, 'fpn.pth', '--work-dir', 'tta', '--tta', '--cfg-options', *SEG_CUT,
                        cwd=seg_dir)
    assert 'mIoU' in log
    used = Config.fromfile(seg_dir / 'tta/dfformer_s18_fpn.py')  # the config the Runner ran, as it dumps it
    assert used.model.type == 'SegTTAModel' and used.model.module.backbone.type == 'DFFormerBackbone'
    assert used.test_dataloader.dataset.pipeline[1].type == 'TestTimeAug'


def test_det_tta(det_dir):
    _, log = _test_tool('detection', RETINA, 'retinanet.pth', '--work-dir', 'tta', '--tta', '--out', 'tta.pkl',
                        '--cfg-options', *DET_CUT, *DET_TTA_CUT, cwd=det_dir)
    assert 'bbox_mAP' in log
    used = Config.fromfile(det_dir / 'tta/dfformer_s18_retinanet.py')
    assert used.model.type == 'DetTTAModel' and used.model.module.type == 'RetinaNet'
    with open(det_dir / 'tta.pkl', 'rb') as f:
        results = pickle.load(f)
    # the TTA pipeline's meta keys (flip) on each merged prediction; the plain test pipeline has none
    assert len(results) == 2 and all('flip' in r for r in results)


def _bad(task, cwd, *args):
    config, checkpoint = (SEG, 'fpn.pth') if task == 'seg' else (RETINA, 'retinanet.pth')
    if 'MASK_RCNN' in args:  # a detection config without TTA settings (any checkpoint: it fails before loading)
        config, args = MASK_RCNN, tuple(a for a in args if a != 'MASK_RCNN')
    return [str(a) for a in (config, checkpoint, "--work-dir", cwd / "bad", *args)]


BAD = [
    ('det', ['--out', 'preds.json'], 'pass a file name ending in .pkl or .pickle'),
    ('det', ['--out', 'a_folder.pkl'], '--out a_folder.pkl is a folder'),
    ('seg', ['--out', 'a_file'], 'output folder a_file is a file: pass a folder with --out'),
    ('seg', ['--out', 'preds.pkl'], 'segmentation writes one PNG label map per test image into a folder'),
    ('det', ['--tta', 'MASK_RCNN'], 'has no tta_model / tta_pipeline, which --tta needs: drop --tta'),
    ('seg', ['--show'], '--show needs a display'),
    ('det', ['--show'], '--show needs a display'),
    ('seg', ['--show-dir', 'a_file'], '--show-dir a_file is a file: pass a folder'),
    ('seg', ['--show-dir', 'd', '--wait-time', '-1'], '--wait-time -1.0: pass a number of seconds >= 0'),
    # (with a display) mmseg's hook would show and save nothing
    ('seg', ['--show', '--show-dir', 'd'], '--show with --show-dir: '),
]


@pytest.mark.parametrize('task, args, message', BAD, ids=[f"{t} {' '.join(a)}" for t, a, _ in BAD])
def test_bad_inputs_are_named(task, args, message, seg_dir, det_dir, monkeypatch):
    """Each user mistake is a ConfigError naming the fix (in process: a subprocess each is slow;
    the one-line exit is checked below)."""
    cwd = seg_dir if task == 'seg' else det_dir
    (cwd / 'a_file').write_text('x')
    (cwd / 'a_folder.pkl').mkdir(exist_ok=True)
    monkeypatch.chdir(cwd)
    monkeypatch.delenv('WAYLAND_DISPLAY', raising=False)
    if '--show' in args and '--show-dir' in args:
        monkeypatch.setenv('DISPLAY', ':0')
    else:
        monkeypatch.delenv('DISPLAY', raising=False)
    tool = load_script('tools/mm/test.py')
    with pytest.raises(ConfigError) as error:
        tool.main(_bad(task, cwd, *args))
    assert message in str(error.value)
    assert '\n' not in str(error.value)


@pytest.mark.parametrize('task, args, message', [BAD[3], BAD[4]], ids=['seg --out pkl', 'det --tta no TTA'])
def test_bad_input_is_one_line_and_exit_2(task, args, message, seg_dir, det_dir):
    cwd = seg_dir if task == 'seg' else det_dir
    result, output = _test_tool('segmentation' if task == 'seg' else 'detection', *_bad(task, cwd, *args), cwd=cwd,
                                expect_ok=False)
    assert result.returncode == 2 and 'Traceback' not in output, output[-3000:]
    assert result.stderr.strip().splitlines()[-1].startswith('error: ')
    assert message in result.stderr.strip().splitlines()[-1]


def test_outputs_are_written_through_the_atomic_backend(tmp_path, monkeypatch):
    """--out's files go through mmadapter's atomic local backend (temporary file, fsync, rename):
    segmentation's label maps (with ADE20K's +1) and detection's pickle (mmengine's dump)."""
    from mmdet.evaluation import DumpDetResults

    from mmadapter.runner import AtomicLocalBackend
    written = []
    real = AtomicLocalBackend._replace_with

    def record(filepath, mode, obj, **kwargs):
        written.append(os.fspath(filepath))
        real(filepath, mode, obj, **kwargs)

    monkeypatch.setattr(AtomicLocalBackend, '_replace_with', staticmethod(record))
    writer = load_script('tools/mm/test.py').SegMapWriter(str(tmp_path / 'maps'))
    writer.dataset_meta = {'classes': tuple(f'c{i}' for i in range(150))}
    labels = torch.tensor([[[0, 149], [7, 0]]])
    writer.process({}, [{'pred_sem_seg': {'data': labels}, 'img_path': 'x/ADE_1.jpg', 'reduce_zero_label': True},
                        {'pred_sem_seg': {'data': labels}, 'img_path': 'x/other.jpg'}])
    assert written == [str(tmp_path / 'maps/ADE_1.png'), str(tmp_path / 'maps/other.png')]
    assert np.array(Image.open(tmp_path / 'maps/ADE_1.png')).tolist() == [[1, 150], [8, 1]]
    assert np.array(Image.open(tmp_path / 'maps/other.png')).tolist() == [[0, 149], [7, 0]]
    DumpDetResults(out_file_path=str(tmp_path / 'preds.pkl')).compute_metrics([{'img_id': 1}])
    assert written[-1] == str(tmp_path / 'preds.pkl')
    with open(tmp_path / 'preds.pkl', 'rb') as f:
        assert pickle.load(f) == [{'img_id': 1}]


def test_checkpoint_of_another_model_is_one_short_line(seg_dir, det_dir):
    """A detector's checkpoint given to the segmentation config: one readable line that says how
    many keys are missing / unexpected and names the first few (mmengine's message lists all of
    them, ~10,000 characters), exit 2, no traceback."""
    result, output = _test_tool('segmentation', SEG, det_dir / 'retinanet.pth', '--work-dir', seg_dir / 'other',
                                '--cfg-options', *SEG_CUT, cwd=seg_dir, expect_ok=False)
    last = result.stderr.strip().splitlines()[-1]
    assert result.returncode == 2 and 'Traceback' not in output, output[-3000:]
    assert last.startswith(f"error: {det_dir / 'retinanet.pth'} does not fit the config's model: "), last
    assert re.search(r': \d+ missing \([\w.]+, [\w.]+, [\w.]+, \.\.\.\); \d+ unexpected \([\w.]+, [\w.]+, [\w.]+, '
                     r'\.\.\.\)', last), last
    assert len(last.replace(str(det_dir / 'retinanet.pth'), '')) < 500, last

#!/usr/bin/env python3
"""Evaluate a segmentor or detector checkpoint.

    .venv/bin/python segmentation/tools/test.py CONFIG CHECKPOINT [--work-dir D] [--out PATH] [--show] [--show-dir D]
        [--wait-time S] [--tta] [--cfg-options k=v ...] [--launcher pytorch]

The options of mmseg 1.2.2's and mmdet 3.3.0's tools/test.py, for the task the config's
default_scope names:
  --out       segmentation: a folder that gets one PNG label map per test image (<image name>.png,
              the dataset's label values, as mmseg's IoUMetric output_dir writes them);
              detection: a .pkl / .pickle file with one entry per test image (mmdet's DumpDetResults)
  --show-dir  the config's visualization hook draws every test image's prediction (mmseg's hook
              alone would draw every 50th; default_hooks.visualization.interval=N in --cfg-options
              still sets it); segmentation: into D/vis_data/vis_image/ (mmseg's visualizer
              save_dir); detection: into WORK_DIR/<timestamp>/D, or D itself when absolute
              (mmdet's test_out_dir)
  --show      shows each drawn prediction in a window for --wait-time seconds (needs a display;
              segmentation: not with --show-dir, mmseg's hook then saves nothing)
  --tta       the config's tta_model around its model, on its tta_pipeline
--out's files are written whole or not at all (through a temporary file, then renamed).
"""
import argparse
import io
import os
import os.path as osp
import sys

import numpy as np
from mmengine.config import ConfigDict
from mmengine.evaluator import BaseMetric
from mmengine.fileio import put
from mmengine.logging import print_log

from mmadapter.runner import (
    ConfigError,
    StrictRunner,
    add_common_args,
    check_writable_folder,
    load_config,
    user_errors_as_one_line,
)

PICKLE = ('.pkl', '.pickle')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('config')
    p.add_argument('checkpoint')
    add_common_args(p)
    p.add_argument('--out', help='segmentation: folder for the predicted label maps (PNG); '
                                 'detection: .pkl file for the predictions')
    p.add_argument('--show', action='store_true', help='show the drawn predictions (needs a display)')
    p.add_argument('--show-dir', help='folder for the drawn predictions (see above for where it goes)')
    p.add_argument('--wait-time', type=float, default=2, help='seconds each image is shown with --show')
    p.add_argument('--tta', action='store_true', help="test-time augmentation (the config's tta_model and "
                                                      'tta_pipeline)')
    return p.parse_args(argv)


class SegMapWriter(BaseMetric):
    """Not a metric: writes each test image's predicted label map to `folder` as a PNG named after
    the image, with the dataset's label values (+1 where the dataset reduces label 0 away, as for
    ADE20K), each file through a temporary one (mmengine's file backend, atomic here)."""

    def __init__(self, folder: str):
        super().__init__()
        self.folder = folder

    def process(self, data_batch, data_samples):
        from PIL import Image
        wide = len(self.dataset_meta['classes']) > 255  # labels (up to the class count, with the +1) past uint8
        for sample in data_samples:
            labels = sample['pred_sem_seg']['data'].squeeze(0).cpu().numpy()
            if sample.get('reduce_zero_label', False):
                labels = labels + 1
            buffer = io.BytesIO()
            Image.fromarray(labels.astype(np.uint16 if wide else np.uint8)).save(buffer, format='PNG')
            name = osp.splitext(osp.basename(sample['img_path']))[0] + '.png'
            put(buffer.getvalue(), osp.join(self.folder, name))
            self.results.append(name)

    def compute_metrics(self, results):
        print_log(f'{len(results)} predicted label maps written to {self.folder}', logger='current')
        return {}


def _check_out(out: str, task: str):
    if task == 'mmdet':
        if not out.endswith(PICKLE):
            raise ConfigError(f'--out {out}: detection predictions are dumped as a pickle; pass a file name ending '
                              'in .pkl or .pickle')
        if osp.isdir(out):
            raise ConfigError(f'--out {out} is a folder: pass a file name ending in .pkl')
        check_writable_folder(osp.dirname(osp.abspath(out)), 'folder', '--out')
    else:
        if out.endswith(PICKLE):
            raise ConfigError(f'--out {out}: segmentation writes one PNG label map per test image into a folder; '
                              'pass a folder (a .pkl file is what detection writes)')
        check_writable_folder(out, 'output folder', '--out')


def _has_display() -> bool:
    return sys.platform != 'linux' or bool(os.environ.get('DISPLAY') or os.environ.get('WAYLAND_DISPLAY'))


def _draw_predictions(cfg, args, task: str):
    """Turn the config's visualization hook on, as the references' test.py do; returns the folder
    the drawn images go to (None with --show only)."""
    hook = cfg.get('default_hooks', {}).get('visualization')
    if not hook:
        raise ConfigError(f"{args.config} has no default_hooks.visualization, which --show / --show-dir use: "
                          f"inherit {task}'s default_runtime.py")
    if args.show and not _has_display():
        raise ConfigError('--show needs a display (DISPLAY is not set): write the drawn predictions to a folder '
                          'with --show-dir DIR instead')
    if args.wait_time < 0:
        raise ConfigError(f'--wait-time {args.wait_time}: pass a number of seconds >= 0')
    hook.draw = True
    if args.show:
        hook.show = True
        hook.wait_time = args.wait_time
    if task == 'mmseg':
        if 'default_hooks.visualization.interval' not in args.cfg_options:
            hook.interval = 1  # mmseg's hook draws every 50th image by default, mmdet's every test image
        # mmseg's hook asks the runner for its training iteration, which builds the training loop and
        # data set (mmseg 1.2.2's test.py then needs the training images): a test run has no training
        for key in ('train_dataloader', 'train_cfg', 'optim_wrapper', 'param_scheduler'):
            cfg[key] = None
    if not args.show_dir:
        return None
    if task == 'mmdet':
        if osp.isabs(args.show_dir) and osp.isfile(args.show_dir):
            raise ConfigError(f'--show-dir {args.show_dir} is a file: pass a folder')
        hook.test_out_dir = args.show_dir  # the hook puts it under WORK_DIR/<timestamp>/ unless absolute
        return args.show_dir
    if args.show:
        raise ConfigError("--show with --show-dir: mmseg's visualization hook then shows without saving; "
                          'pass one of them')
    if osp.isfile(args.show_dir):
        raise ConfigError(f'--show-dir {args.show_dir} is a file: pass a folder')
    cfg.visualizer.save_dir = args.show_dir  # mmseg's visualizer writes into <save_dir>/vis_data/vis_image
    return osp.join(args.show_dir, 'vis_data', 'vis_image')


def _use_tta(cfg, args, task: str):
    missing = [key for key in ('tta_model', 'tta_pipeline') if not cfg.get(key)]
    if missing:
        example = ('mmdet::retinanet/retinanet_tta.py' if task == 'mmdet'
                   else "mmseg's dataset config, e.g. mmseg::_base_/datasets/ade20k.py")
        raise ConfigError(f"{args.config} has no {' / '.join(missing)}, which --tta needs: drop --tta or add them "
                          f'to the config (as {example} defines them)')
    cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline


def main(argv=None):
    args = parse_args(argv)
    if not osp.isfile(args.checkpoint):
        raise ConfigError(f'checkpoint {args.checkpoint} does not exist')
    cfg = load_config(args, loaders=('test_dataloader',))
    task = cfg.default_scope
    cfg.load_from = args.checkpoint
    # The checkpoint holds every weight: no ImageNet download for the backbone.
    cfg.model.backbone.init_cfg = None
    if args.out:
        _check_out(args.out, task)
    drawn = _draw_predictions(cfg, args, task) if args.show or args.show_dir else None
    if args.tta:
        _use_tta(cfg, args, task)
    runner = StrictRunner.from_cfg(cfg)
    if args.out:
        if task == 'mmdet':
            from mmdet.evaluation import DumpDetResults
            writer = DumpDetResults(out_file_path=args.out)  # written by mmengine's dump: atomic here
        else:
            writer = SegMapWriter(args.out)
        evaluator = runner.test_evaluator  # built now, with the data set's meta information
        writer.dataset_meta = evaluator.dataset_meta
        evaluator.metrics.append(writer)
    metrics = runner.test()
    if drawn:
        if task == 'mmdet':
            drawn = osp.join(runner.work_dir, runner.timestamp, drawn)
        print_log(f'drawn predictions are in {drawn}', logger='current')
    return metrics


if __name__ == '__main__':
    with user_errors_as_one_line():
        main()

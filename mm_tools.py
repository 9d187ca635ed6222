"""One front end over mmengine's Runner for segmentation/tools and detection/tools.

train: `python {segmentation,detection}/tools/train.py CONFIG [--work-dir D] [--resume [CKPT]] [--amp]
        [--seed S] [--deterministic] [--cfg-options k=v ...] [--launcher pytorch]`
test:  `python .../tools/test.py CONFIG CHECKPOINT [--work-dir D] [--cfg-options ...]`
"""
import argparse
import logging
import os
import os.path as osp
import pickle
import sys
from contextlib import contextmanager

ROOT = osp.dirname(osp.abspath(__file__))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)  # configs import `models.mm_backbone`

import torch  # noqa: E402


def _common_args(p: argparse.ArgumentParser):
    p.add_argument('--work-dir', help='where logs and checkpoints go (default ./work_dirs/<config name>)')
    p.add_argument('--cfg-options', nargs='+', action=_DictAction, default={},
                   help='override config entries, e.g. model.backbone.init_cfg=None')
    p.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    p.add_argument('--local_rank', '--local-rank', type=int, default=0)


class _DictAction(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        from mmengine.config import DictAction
        DictAction(self.option_strings, self.dest)(parser, namespace, values, option_string)


def _load_config(args, default_scope: str):
    from mmengine.config import Config
    _register_cpu_ddp()
    if not osp.isfile(args.config):
        raise SystemExit(f'error: config {args.config} does not exist')
    cfg = Config.fromfile(args.config)
    cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher
    cfg.default_scope = cfg.get('default_scope', default_scope)
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or osp.join(
        './work_dirs', osp.splitext(osp.basename(args.config))[0])
    if not torch.cuda.is_available():
        # NCCL needs GPUs; gloo runs distributed jobs on CPU.
        cfg.env_cfg = {**cfg.get('env_cfg', {}), 'dist_cfg': {'backend': 'gloo'}}
        if args.launcher == 'pytorch':
            # mmengine 0.10.7's pytorch launcher calls torch.cuda.set_device and gives DDP a CUDA
            # device id: on CPU start gloo here (mmengine then skips its init) and use a CPU wrapper.
            if not torch.distributed.is_initialized():
                torch.distributed.init_process_group(backend='gloo')
            cfg.model_wrapper_cfg = dict(type='CPUDistributedDataParallel', broadcast_buffers=False)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return cfg


def _register_cpu_ddp():
    from mmengine.model import MMDistributedDataParallel, revert_sync_batchnorm
    from mmengine.registry import MODEL_WRAPPERS

    @MODEL_WRAPPERS.register_module(force=True)
    class CPUDistributedDataParallel(MMDistributedDataParallel):
        """mmengine's DDP wrapper for gloo on CPU: no device ids, and SyncBN (CUDA-only) back to BN."""

        def __init__(self, module, device_ids=None, **kwargs):
            super().__init__(module=revert_sync_batchnorm(module), device_ids=None, **kwargs)


@contextmanager
def checkpoints_loadable():
    """Let torch.load(weights_only=True) read mmengine's own Runner checkpoints.

    Their 'message_hub' entry pickles mmengine's HistoryBuffer (with its statistics methods as
    `getattr(HistoryBuffer, name)`) and numpy arrays and scalars; torch 2.6+ refuses those and
    mmengine 0.10.7 does not allow-list them. We allow exactly these, while our tools run the
    Runner, and `getattr` only as a stand-in that resolves HistoryBuffer's statistics methods.
    """
    import _codecs
    import numpy as np
    from mmengine.logging import HistoryBuffer

    def history_buffer_method(obj, name):
        if obj is HistoryBuffer and name in {'min', 'max', 'current', 'mean', *HistoryBuffer._statistics_methods}:
            return getattr(obj, name)
        raise pickle.UnpicklingError(f'refusing getattr({obj!r}, {name!r}) in a checkpoint')

    multiarray = np._core.multiarray
    allowed = [
        HistoryBuffer, np.ndarray, np.dtype,
        (history_buffer_method, 'builtins.getattr'), (history_buffer_method, '__builtin__.getattr'),
        (multiarray._reconstruct, 'numpy._core.multiarray._reconstruct'),
        (multiarray.scalar, 'numpy._core.multiarray.scalar'),
        (np.ndarray, 'numpy.ndarray'), (np.dtype, 'numpy.dtype'),
        (_codecs.encode, '_codecs.encode'),
    ] + [type(np.dtype(t)) for t in (np.float64, np.float32, np.int64, np.int32, np.bool_, np.uint8)]
    with torch.serialization.safe_globals(allowed):
        yield


def train(default_scope: str, argv=None):
    p = argparse.ArgumentParser(description='Train a segmentor/detector with mmengine (see mm_tools.py)')
    p.add_argument('config')
    _common_args(p)
    p.add_argument('--resume', nargs='?', const='auto', default=None,
                   help='resume from CHECKPOINT, or from the latest one in the work dir when no path is given')
    p.add_argument('--amp', action='store_true', help='mixed precision (fp16 with dynamic loss scaling; GPU only)')
    p.add_argument('--seed', type=int, default=None)
    p.add_argument('--deterministic', action='store_true')
    args = p.parse_args(argv)
    cfg = _load_config(args, default_scope)
    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if cfg.optim_wrapper.get('type') == 'AmpOptimWrapper' and not torch.cuda.is_available():
        from mmengine.logging import print_log
        print_log('mixed precision needs a GPU (mmengine 0.10.7 AmpOptimWrapper): training in float32',
                  logger='current', level=logging.WARNING)
        cfg.optim_wrapper.type = 'OptimWrapper'
        cfg.optim_wrapper.pop('loss_scale', None)
        cfg.optim_wrapper.pop('dtype', None)
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume:
        cfg.resume, cfg.load_from = True, args.resume
    if args.seed is not None or args.deterministic:
        cfg.randomness = dict(seed=args.seed, deterministic=args.deterministic)
    from mmengine.runner import Runner
    runner = Runner.from_cfg(cfg)
    with checkpoints_loadable():
        runner.train()
    return runner


def test(default_scope: str, argv=None):
    p = argparse.ArgumentParser(description='Evaluate a checkpoint with mmengine (see mm_tools.py)')
    p.add_argument('config')
    p.add_argument('checkpoint')
    _common_args(p)
    args = p.parse_args(argv)
    if not osp.isfile(args.checkpoint):
        raise SystemExit(f'error: checkpoint {args.checkpoint} does not exist')
    cfg = _load_config(args, default_scope)
    cfg.load_from = args.checkpoint
    # The checkpoint holds every weight: no ImageNet download for the backbone.
    cfg.model.backbone.init_cfg = None
    from mmengine.runner import Runner
    runner = Runner.from_cfg(cfg)
    with checkpoints_loadable():
        return runner.test()


def flops(default_scope: str, argv=None):
    """MACs of a config's model (FFTs and complex products included; see models/flops.py)."""
    p = argparse.ArgumentParser(description=flops.__doc__)
    p.add_argument('config')
    p.add_argument('--shape', type=int, nargs='+', default=[512, 512], help='input H W')
    _common_args(p)
    args = p.parse_args(argv)
    cfg = _load_config(args, default_scope)
    cfg.model.backbone.init_cfg = None
    from mmengine.registry import init_default_scope
    from mmengine.registry import MODELS
    from models.flops import MAC_CONVENTION, count_macs
    init_default_scope(cfg.default_scope)
    model = MODELS.build(cfg.model).eval()
    h, w = args.shape if len(args.shape) == 2 else args.shape * 2
    # The network without data pre-processing and post-processing (as mmseg/mmdet's get_flops).
    net = _TensorForward(model)
    macs, _ = count_macs(net, (h, w))
    params = sum(p.numel() for p in model.parameters())
    print(f'{args.config}: input {h}x{w}  MACs {macs / 1e9:.2f} G  params {params / 1e6:.2f} M')
    print(f'MAC convention: {MAC_CONVENTION}')
    return macs, params


class _TensorForward(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model._forward(x)

"""mmengine 0.10.7 under torch 2.14: the two places where they disagree, each fixed narrowly."""
import pickle
from contextlib import contextmanager

import torch


@contextmanager
def runner_checkpoints_loadable():
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

    # numpy pickles name these by their private module path; that path is what must be allowed.
    reconstruct, scalar = np._core.multiarray._reconstruct, np._core.multiarray.scalar
    allowed = [
        HistoryBuffer, np.ndarray, np.dtype,
        (history_buffer_method, 'builtins.getattr'), (history_buffer_method, '__builtin__.getattr'),
        (reconstruct, 'numpy._core.multiarray._reconstruct'),
        (scalar, 'numpy._core.multiarray.scalar'),
        (np.ndarray, 'numpy.ndarray'), (np.dtype, 'numpy.dtype'),
        (_codecs.encode, '_codecs.encode'),
    ] + [type(np.dtype(t)) for t in (np.float64, np.float32, np.int64, np.int32, np.bool_, np.uint8)]
    with torch.serialization.safe_globals(allowed):
        yield


def use_gloo_without_cuda(cfg, launcher: str):
    """mmengine 0.10.7's pytorch launcher calls torch.cuda.set_device and gives DDP a CUDA device
    id. Without CUDA: gloo, started here (mmengine then skips its init), and a CPU DDP wrapper."""
    if torch.cuda.is_available():
        return
    cfg.env_cfg = {**cfg.get('env_cfg', {}), 'dist_cfg': {'backend': 'gloo'}}
    if launcher == 'pytorch':
        if not torch.distributed.is_initialized():
            torch.distributed.init_process_group(backend='gloo')
        _register_cpu_ddp()
        cfg.model_wrapper_cfg = dict(type='CPUDistributedDataParallel', broadcast_buffers=False)


def _register_cpu_ddp():
    from mmengine.model import MMDistributedDataParallel, revert_sync_batchnorm
    from mmengine.registry import MODEL_WRAPPERS

    if 'CPUDistributedDataParallel' in MODEL_WRAPPERS.module_dict:
        return

    @MODEL_WRAPPERS.register_module()
    class CPUDistributedDataParallel(MMDistributedDataParallel):
        """mmengine's DDP wrapper for gloo on CPU: no device ids, and SyncBN (CUDA-only) back to BN."""

        def __init__(self, module, device_ids=None, **kwargs):
            super().__init__(module=revert_sync_batchnorm(module), device_ids=None, **kwargs)

"""DFFormer / CDFFormer / GFFormer for timm: `import models` registers every model name."""
from .checkpoint import CheckpointError, load_checkpoint, read_checkpoint
from .dfformer import (
    MIN_IMG_SIZE,
    MODEL_ARCHS,
    DFFormer,
    DFFormerDense,
    DFFormerTrunk,
    arch_args,
    checkpoint_filter_fn,
)
from .layers import resize_filter_bases

__all__ = [
    'CheckpointError', 'DFFormer', 'DFFormerDense', 'DFFormerTrunk', 'MIN_IMG_SIZE', 'MODEL_ARCHS', 'arch_args',
    'checkpoint_filter_fn', 'load_checkpoint', 'read_checkpoint', 'resize_filter_bases',
]

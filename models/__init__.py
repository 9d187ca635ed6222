"""DFFormer / CDFFormer / GFFormer for timm: `import models` registers every model name."""
from .checkpoint import CheckpointError, load_checkpoint
from .dfformer import (
    MODEL_ARCHS,
    DFFormer,
    DFFormerDense,
    DFFormerTrunk,
    arch_args,
    checkpoint_filter_fn,
    resize_filter_bases,
)

__all__ = [
    'CheckpointError', 'DFFormer', 'DFFormerDense', 'DFFormerTrunk', 'MODEL_ARCHS', 'arch_args',
    'checkpoint_filter_fn', 'load_checkpoint', 'resize_filter_bases',
]

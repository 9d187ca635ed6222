"""DFFormer / CDFFormer / GFFormer for timm: `import models` registers every model name."""
from .checkpoint import CheckpointError, load_checkpoint, read_state_dict
from .dfformer import (
    DFFormer, DFFormerDense, MODEL_ARCHS, arch_args, checkpoint_filter_fn, resize_filter_bases,
)

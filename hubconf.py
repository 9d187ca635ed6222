"""torch.hub entry points: the DFFormer and CDFFormer models with released ImageNet-1k weights.

    model = torch.hub.load('/path/to/this/repo', 'dfformer_s18', source='local', pretrained=True)

Each entry is the model's timm entry point, `fn(pretrained=False, **kwargs)`: keyword arguments are
those of timm.create_model (num_classes=, img_size=, features_only=,
pretrained_cfg_overlay=dict(file=...) for a local copy of the weights, ...). pretrained=True takes
the authors' released file, cached by torch.hub. This repository's `models` package (installed by
`bash setup.sh` or `pip install -e .`) defines them.
"""
from models.dfformer import (
    cdfformer_b36,
    cdfformer_m36,
    cdfformer_s18,
    cdfformer_s36,
    dfformer_b36,
    dfformer_m36,
    dfformer_s18,
    dfformer_s36,
)

dependencies = ['torch', 'timm']

__all__ = [
    'cdfformer_b36', 'cdfformer_m36', 'cdfformer_s18', 'cdfformer_s36',
    'dfformer_b36', 'dfformer_m36', 'dfformer_s18', 'dfformer_s36',
]

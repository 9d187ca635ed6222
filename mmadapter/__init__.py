"""OpenMMLab adapter: the DFFormer trunk as an mmseg / mmdet backbone, and what the
`segmentation/` and `detection/` tools share. Configs load it with
`custom_imports = dict(imports=['mmadapter'], allow_failed_imports=False)`."""
from .backbone import DFFormerBackbone

__all__ = ['DFFormerBackbone']

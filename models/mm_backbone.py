"""DFFormer / CDFFormer backbone for mmsegmentation 1.x and mmdetection 3.x.

One class, registered in both libraries' MODELS registries, built from the classification
model code (`DFFormerDense`). Configs import it with
`custom_imports = dict(imports=['models.mm_backbone'], allow_failed_imports=False)`.
"""
import os
from typing import Optional, Sequence

from .checkpoint import CheckpointError, _first_line, load_checkpoint
from .dfformer import RELEASE_URL, DFFormerDense, arch_args, checkpoint_filter_fn

__all__ = ['DFFormerBackbone']


def _stage0_norm_default() -> bool:
    # The authors' detection command line switched RetinaNet's layout with FORK_LAST3=1.
    return not os.environ.get('FORK_LAST3')


class DFFormerBackbone(DFFormerDense):
    """Backbone returning the normalised NCHW outputs of the stages in `out_indices`.

    Args:
        arch: a zoo name, e.g. 'dfformer_s18' or 'cdfformer_m36'.
        img_size: input size the frequency filters are built for (512 for ADE20K, 800 for COCO);
            other sizes resize them on the fly.
        stage0_output_norm: False makes norm0 an identity (RetinaNet starts its FPN at stage 1);
            None: True unless the environment sets FORK_LAST3 (the authors' switch).
        init_cfg: dict(type='Pretrained', checkpoint=URL or path) loads ImageNet weights, the filters
            resized to `img_size`; 'release' as checkpoint means the authors' release for `arch`.
    """

    def __init__(
            self,
            arch: str = 'dfformer_s18',
            img_size=512,
            out_indices: Sequence[int] = (0, 1, 2, 3),
            stage0_output_norm: Optional[bool] = None,
            drop_path_rate: float = 0.,
            init_cfg: Optional[dict] = None,
            **kwargs,
    ):
        if stage0_output_norm is None:
            stage0_output_norm = _stage0_norm_default()
        super().__init__(
            out_indices=out_indices, stage0_output_norm=stage0_output_norm, img_size=img_size,
            drop_path_rate=drop_path_rate, **{**arch_args(arch), **kwargs})
        self.arch = arch
        self.init_cfg = init_cfg
        self.is_init = False

    def _checkpoint_file(self, checkpoint: str) -> str:
        if checkpoint == 'release':
            checkpoint = RELEASE_URL.format(self.arch)
        if '://' not in checkpoint:
            return checkpoint
        try:
            from timm.models._hub import download_cached_file
            return download_cached_file(checkpoint)
        except Exception as e:  # no network, HTTP error, ...
            raise CheckpointError(
                f'cannot download {checkpoint} ({_first_line(e)}); '
                'download it by hand and set model.backbone.init_cfg.checkpoint to the file, '
                'or train from scratch with model.backbone.init_cfg=None') from None

    def init_weights(self):
        """ImageNet weights from init_cfg (mmengine calls this); random init without one."""
        if not self.init_cfg:
            return
        if self.init_cfg.get('type') != 'Pretrained':
            raise ValueError(f"{type(self).__name__} supports init_cfg=dict(type='Pretrained', checkpoint=...) "
                             f'only, got {self.init_cfg}')
        path = self._checkpoint_file(self.init_cfg['checkpoint'])
        # A classification checkpoint has no stage output norms: those keep their init.
        load_checkpoint(self, path, filter_fn=checkpoint_filter_fn, allow_missing=('norm0.', 'norm1.', 'norm2.', 'norm3.'))
        self.is_init = True


def _register():
    for module in ('mmseg.registry', 'mmdet.registry'):
        try:
            registry = __import__(module, fromlist=['MODELS']).MODELS
        except ImportError:
            continue
        if registry.get('DFFormerBackbone') is None:
            registry.register_module(module=DFFormerBackbone)


_register()

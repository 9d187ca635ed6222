"""DFFormer / CDFFormer backbone for mmsegmentation 1.x and mmdetection 3.x.

One class, registered in both libraries' MODELS registries: the classification trunk with
per-stage output norms (`models.DFFormerDense`).
"""
import os
from typing import Optional, Sequence

import torch

from models import CheckpointError, DFFormerDense, arch_args
from models.checkpoint import first_line, load_checkpoint, load_state_dict_checked
from models.dfformer import RELEASE_URL

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

    def init_weights(self):
        """ImageNet weights from init_cfg (mmengine calls this); random init without one."""
        if not self.init_cfg:
            return
        if self.init_cfg.get('type') != 'Pretrained':
            raise ValueError(f"{type(self).__name__} supports init_cfg=dict(type='Pretrained', checkpoint=...) "
                             f'only, got {self.init_cfg}')
        checkpoint = self.init_cfg['checkpoint']
        if checkpoint == 'release':
            checkpoint = RELEASE_URL.format(self.arch)
        if '://' not in checkpoint:
            load_checkpoint(self, checkpoint)
        else:
            try:
                state_dict = torch.hub.load_state_dict_from_url(checkpoint, map_location='cpu', weights_only=True)
            except Exception as e:  # no network, HTTP error, unreadable download
                raise CheckpointError(
                    f'cannot download {checkpoint} ({first_line(e)}); '
                    'download it by hand and set model.backbone.init_cfg.checkpoint to the file, '
                    'or train from scratch with model.backbone.init_cfg=None') from None
            load_state_dict_checked(self, state_dict, checkpoint)
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

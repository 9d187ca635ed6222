"""DFFormer, CDFFormer and GFFormer.

"FFT-based Dynamic Token Mixer for Vision", Yuki Tatsunami and Masato Taki, AAAI 2024
(https://arxiv.org/abs/2303.03932). MetaFormer models whose token mixer filters the rFFT2 of
the (expanded) features with a per-image, per-channel mix of learned complex filter bases.

This file holds the network, its checkpoint adaptation and the model zoo; the layers (the
transforms, the spectral mixing Function, the token mixers) are in `models/layers/`.
State-dict names and shapes are those of the authors' release, so their checkpoints load
strictly. Inside the stages tensors are channels-last (B, H, W, C), as in the original.

Where this differs from the original code (outputs equal within float32 round-off; the plain
formulas are compared in float64 in tests/test_spectral_equivalence.py):
- the spectral mixing is one autograd Function that keeps only its real input and the routing
  weights for backward, and StarReLU keeps only its input: 0.68x ConvFormer's saved activations
  rather than 1.17x;
- small maps are transformed by real DFT matrices (one GEMM), larger ones by FFT
  (`layers.dft`); `spectral_transform('matmul')` forces the matrices everywhere (ONNX);
- the per-image filter is one real matmul (routing weights x bases), not a complex einsum, and
  pwconv2 is applied to the filtered half spectrum before the inverse transform (both are
  real-linear, so they commute);
- MLPs and pointwise layers are 1x1 convolutions of channels_last views (oneDNN) with the
  nn.Linear parameters of the original;
- filters are resized on the fly for any input size, as the authors did for dense tasks only.
"""
import math
import numbers
import re
from functools import partial
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import DropPath, to_2tuple, trunc_normal_
from timm.models import (
    build_model_with_cfg,
    checkpoint_seq,
    clean_state_dict,
    generate_default_cfgs,
    register_model,
)
from timm.models._features import feature_take_indices  # (timm 1.0 exports no public alias)
from timm.models.metaformer import MlpHead, Scale, SquaredReLU
from torch import Tensor

from .layers import AFNO, ChannelMlp, DynamicFilter, GlobalFilter, SepConv, StarReLU, resize_filter_bases

__all__ = ['DFFormer', 'DFFormerDense', 'DFFormerTrunk', 'checkpoint_filter_fn']


TOKEN_MIXERS = dict(
    dynamic_filter=DynamicFilter,
    global_filter=GlobalFilter,
    sepconv=SepConv,
    afno=AFNO,
)
ACTIVATIONS = dict(star_relu=StarReLU, gelu=nn.GELU, relu=nn.ReLU)


def _layer_norm(dim: int, bias: bool = False) -> nn.LayerNorm:
    return nn.LayerNorm(dim, eps=1e-6, bias=bias)


class Downsampling(nn.Module):
    """Stem (image -> conv 7x7/4 -> norm) or stage transition (norm -> conv 3x3/2); NHWC out."""

    def __init__(self, in_chs: int, out_chs: int, stem: bool):
        super().__init__()
        self.pre_permute = not stem  # stage transitions take NHWC
        self.pre_norm = nn.Identity() if stem else _layer_norm(in_chs)
        if stem:
            self.conv = nn.Conv2d(in_chs, out_chs, kernel_size=7, stride=4, padding=2)
        else:
            self.conv = nn.Conv2d(in_chs, out_chs, kernel_size=3, stride=2, padding=1)
        self.post_norm = _layer_norm(out_chs) if stem else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        x = self.pre_norm(x)
        if self.pre_permute:
            # A channels_last view: the conv keeps that memory format, so the permute
            # back to NHWC below is contiguous again.
            x = x.permute(0, 3, 1, 2)
        return self.post_norm(self.conv(x).permute(0, 2, 3, 1))


class MetaFormerBlock(nn.Module):
    """x = r1(x) + mixer(norm1(x)); x = r2(x) + mlp(norm2(x)), with optional residual scales."""

    def __init__(
            self,
            dim: int,
            token_mixer: nn.Module,
            act_layer=StarReLU,
            mlp_ratio: float = 4,
            drop: float = 0.,
            drop_path: float = 0.,
            res_scale_init_value: Optional[float] = None,
    ):
        super().__init__()
        self.norm1 = _layer_norm(dim)
        self.token_mixer = token_mixer
        self.drop_path1 = DropPath(drop_path) if drop_path > 0. else nn.Identity()
        self.res_scale1 = Scale(dim, res_scale_init_value, use_nchw=False) if res_scale_init_value else nn.Identity()
        self.norm2 = _layer_norm(dim)
        self.mlp = ChannelMlp(dim, int(mlp_ratio * dim), act_layer=act_layer, bias=False, drop=drop)
        self.drop_path2 = DropPath(drop_path) if drop_path > 0. else nn.Identity()
        self.res_scale2 = Scale(dim, res_scale_init_value, use_nchw=False) if res_scale_init_value else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        x = self.res_scale1(x) + self.drop_path1(self.token_mixer(self.norm1(x)))
        x = self.res_scale2(x) + self.drop_path2(self.mlp(self.norm2(x)))
        return x


# The stem (conv 7x7, stride 4, padding 2) needs 3 pixels for a 1x1 output; every later map is >= 1x1.
MIN_IMG_SIZE = 3


def _stage_size(img_size: Tuple[int, int], stride: int) -> Tuple[int, int]:
    """The feature-map size the filters of a stage are built for: img_size // stride (the authors'
    choice), at least 1x1 (below 32 px the last stages' maps are 1 pixel, not 0)."""
    return max(1, img_size[0] // stride), max(1, img_size[1] // stride)


def _per_stage(value, num_stages: int) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value] * num_stages


NUM_STAGES = 4


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _check_per_stage(name: str, values, what: str, ok) -> None:
    """`values` is a list or tuple of NUM_STAGES items for which ok(item) holds, else a ValueError
    naming the argument (a wrong length would otherwise be an IndexError deep in the build)."""
    if not isinstance(values, (list, tuple)) or len(values) != NUM_STAGES or not all(ok(v) for v in values):
        raise ValueError(f'{name} must be {NUM_STAGES} {what}, one per stage (got {values!r})')


def _check_range(name: str, value, low, high=None, integer: bool = False) -> None:
    """low <= value (<= high): a ValueError naming the argument, not a failure in torch."""
    if not (_is_int(value) if integer else _is_number(value)) or value < low or high is not None and value > high:
        what = 'a whole number' if integer else 'a finite number'
        bound = f'>= {low}' if high is None else f'from {low} to {high}'
        raise ValueError(f'{name} must be {what} {bound} (got {value!r})')


class DFFormerTrunk(nn.Module):
    """Stem and four stages of MetaFormer blocks with FFT-based token mixers: the trunk shared by
    the classifier (`DFFormer`) and the dense-prediction backbone (`DFFormerDense`).

    Args:
        depths, dims: blocks and channels of the four stages.
        token_mixers: per stage (or one for all), a key of TOKEN_MIXERS.
        mixer_kwargs: overrides of the mixer defaults (e.g. num_filters, reweight_expansion_ratio).
        act_layer: 'star_relu', 'gelu' or 'relu': first activation of the mixer and of the MLP.
        img_size: input size the frequency filters are built for (at least 3 px, as any input);
            other sizes resize them.
        res_scale_init_values: per stage, init of the residual scales (None: no scale).
        proj_drop_rate: dropout in the channel MLPs; drop_path_rate: stochastic depth (last block).
    """

    def __init__(
            self,
            in_chans: int = 3,
            depths: Sequence[int] = (3, 3, 9, 3),
            dims: Sequence[int] = (64, 128, 320, 512),
            token_mixers: Union[str, Sequence[str]] = 'dynamic_filter',
            mixer_kwargs: Optional[Dict] = None,
            act_layer: str = 'star_relu',
            img_size: Union[int, Tuple[int, int]] = 224,
            mlp_ratio: float = 4,
            res_scale_init_values: Sequence[Optional[float]] = (None, None, 1.0, 1.0),
            proj_drop_rate: float = 0.,
            drop_path_rate: float = 0.,
    ):
        super().__init__()
        # every argument is checked here: a malformed one is a ValueError naming it
        _check_per_stage('depths', depths, 'whole numbers >= 0', lambda v: _is_int(v) and v >= 0)
        _check_per_stage('dims', dims, 'whole numbers >= 1', lambda v: _is_int(v) and v >= 1)
        num_stages = NUM_STAGES
        token_mixers = _per_stage(token_mixers, num_stages)
        _check_per_stage('token_mixers', token_mixers, 'token mixer names (or one for all)',
                         lambda v: isinstance(v, str))
        unknown = sorted(set(token_mixers) - set(TOKEN_MIXERS))
        if unknown:
            raise ValueError(f'unknown token mixer(s) {unknown}; choose from {sorted(TOKEN_MIXERS)}')
        if not isinstance(act_layer, str) or act_layer not in ACTIVATIONS:
            raise ValueError(f'unknown act_layer {act_layer!r}; choose from {sorted(ACTIVATIONS)}')
        if mixer_kwargs is not None and not isinstance(mixer_kwargs, dict):
            raise ValueError(f'mixer_kwargs must be a dict of token mixer arguments (got {mixer_kwargs!r})')
        res_scales = _per_stage(res_scale_init_values, num_stages)
        _check_per_stage('res_scale_init_values', res_scales, 'numbers or None (or one for all)',
                         lambda v: v is None or _is_number(v))
        _check_range('in_chans', in_chans, 1, integer=True)
        if not _is_number(mlp_ratio) or not mlp_ratio > 0:
            raise ValueError(f'mlp_ratio must be a number > 0 (got {mlp_ratio!r})')
        _check_range('proj_drop_rate', proj_drop_rate, 0, 1)
        _check_range('drop_path_rate', drop_path_rate, 0, 1)
        act = ACTIVATIONS[act_layer]
        if act is StarReLU:  # the mixers' and MLPs' activations take fresh buffers: reuse them
            act = partial(StarReLU, inplace=True)
        img_size = to_2tuple(img_size)
        if len(img_size) != 2 or not all(_is_int(v) for v in img_size):
            raise ValueError(f'img_size must be a whole number or a pair (height, width) of them (got {img_size!r})')
        if min(img_size) < MIN_IMG_SIZE:
            raise ValueError(f'img_size must be at least {MIN_IMG_SIZE} pixels (got {img_size})')

        self.dims = list(dims)
        self.img_size = img_size
        self.num_features = self.head_hidden_size = dims[-1]
        self.grad_checkpointing = False

        self.downsample_layers = nn.ModuleList(
            [Downsampling(([in_chans] + list(dims))[i], dims[i], stem=i == 0) for i in range(num_stages)])
        dp_rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.stages = nn.ModuleList()
        self.feature_info = []
        cur = 0
        for i in range(num_stages):
            stride = 2 ** (i + 2)
            mixer = partial(
                TOKEN_MIXERS[token_mixers[i]], act_layer=act, **(mixer_kwargs or {}),
                **({'size': _stage_size(img_size, stride)}
                   if token_mixers[i] in ('dynamic_filter', 'global_filter') else {}),
            )
            self.stages.append(nn.Sequential(*[
                MetaFormerBlock(
                    dims[i], mixer(dims[i]), act_layer=act, mlp_ratio=mlp_ratio, drop=proj_drop_rate,
                    drop_path=dp_rates[cur + j], res_scale_init_value=res_scales[i])
                for j in range(depths[i])
            ]))
            cur += depths[i]
            self.feature_info.append(dict(num_chs=dims[i], reduction=stride, module=f'stages.{i}'))
        self.apply(_init_weights)

    @torch.jit.ignore
    def no_weight_decay(self):
        # The authors' recipe decays every tensor of 2+ dims (the filter bases included) and no
        # 1-dim tensor; timm's param_groups_weight_decay skips 1-dim tensors by itself.
        return set()

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False):
        return dict(
            stem=r'^downsample_layers\.0',
            blocks=r'^stages\.(\d+)' if coarse else [
                (r'^downsample_layers\.(\d+)', (0,)),  # with the stage it feeds
                (r'^stages\.(\d+)\.(\d+)', None),
                (r'^norm', (99999,)),
            ],
        )

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True):
        self.grad_checkpointing = enable

    def _run_stages(self, x: Tensor, last: int = -1) -> List[Tensor]:
        """Outputs (NHWC) of stages 0..last (all when last < 0)."""
        outs = []
        for i, (down, stage) in enumerate(zip(self.downsample_layers, self.stages)):
            if last < 0 or i <= last:  # (TorchScript unrolls this loop: no `break`)
                x = down(x)
                if self.grad_checkpointing and not torch.jit.is_scripting():
                    x = checkpoint_seq(stage, x)
                else:
                    x = stage(x)
                outs.append(x)
        return outs


def _init_weights(m: nn.Module):
    if isinstance(m, (nn.Conv2d, nn.Linear)):
        trunc_normal_(m.weight, std=.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def _check_global_pool(global_pool: str) -> str:
    if global_pool not in ('avg', ''):
        raise ValueError(f"global_pool must be 'avg' or '' (got {global_pool!r})")
    return global_pool


class DFFormer(DFFormerTrunk):
    """DFFormer / CDFFormer / GFFormer classifier: the trunk, global average pooling, a
    LayerNorm and an MLP head (timm's MetaFormer head).

    Args:
        num_classes: classes of the head (0: no head, `forward` returns pooled features).
        global_pool: 'avg', or '' to classify every position.
        drop_rate: dropout in the MLP head.
        **kwargs: the trunk's arguments (see DFFormerTrunk); an unknown one is an error.
    """

    def __init__(self, num_classes: int = 1000, global_pool: str = 'avg', drop_rate: float = 0., **kwargs):
        _check_range('num_classes', num_classes, 0, integer=True)
        _check_range('drop_rate', drop_rate, 0, 1)
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.global_pool = _check_global_pool(global_pool)
        self.drop_rate = drop_rate
        self.norm = nn.LayerNorm(self.num_features, eps=1e-6)
        self.head = self._make_head(num_classes)

    def _make_head(self, num_classes: int) -> nn.Module:
        if num_classes <= 0:
            return nn.Identity()
        head = MlpHead(self.num_features, num_classes, act_layer=SquaredReLU, norm_layer=nn.LayerNorm,
                       drop_rate=self.drop_rate)
        head.apply(_init_weights)
        return head

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head.fc2 if isinstance(self.head, MlpHead) else self.head

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None):
        if global_pool is not None:
            self.global_pool = _check_global_pool(global_pool)
        self.num_classes = num_classes
        self.head = self._make_head(num_classes).to(self.norm.weight.device)

    def forward_intermediates(
            self,
            x: Tensor,
            indices: Optional[Union[int, List[int]]] = None,
            norm: bool = False,
            stop_early: bool = False,
            output_fmt: str = 'NCHW',
            intermediates_only: bool = False,
    ) -> Union[List[Tensor], Tuple[Tensor, List[Tensor]]]:
        """Stage outputs (NCHW) at `indices` (last n if int, all if None) and, unless
        intermediates_only, the final features as forward_features returns them."""
        assert output_fmt in ('NCHW', 'NHWC'), 'output_fmt must be NCHW or NHWC'
        take_indices, max_index = feature_take_indices(len(self.stages), indices)
        outs = self._run_stages(x, max_index if stop_early or intermediates_only else -1)
        intermediates = [
            outs[i].permute(0, 3, 1, 2) if output_fmt == 'NCHW' else outs[i] for i in take_indices]
        if intermediates_only:
            return intermediates
        return outs[-1].permute(0, 3, 1, 2), intermediates

    def prune_intermediate_layers(
            self,
            indices: Union[int, List[int]] = 1,
            prune_norm: bool = False,
            prune_head: bool = True,
    ):
        take_indices, max_index = feature_take_indices(len(self.stages), indices)
        self.stages = self.stages[:max_index + 1]
        self.downsample_layers = self.downsample_layers[:max_index + 1]
        if prune_head or max_index < len(self.dims) - 1:
            self.reset_classifier(0, '')
        return take_indices

    def forward_features(self, x: Tensor) -> Tensor:
        """Unpooled final features, NCHW."""
        return self._run_stages(x)[-1].permute(0, 3, 1, 2)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        if self.global_pool == 'avg':
            x = self.norm(x.mean(dim=(2, 3)))
            return x if pre_logits else self.head(x)
        # No pooling: normalise and classify every position.
        x = self.norm(x.permute(0, 2, 3, 1))
        return (x if pre_logits else self.head(x)).permute(0, 3, 1, 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


class DFFormerDense(DFFormerTrunk):
    """The trunk as a backbone for dense prediction.

    Returns the NCHW outputs of the stages in `out_indices`, each normalised by `norm{i}`
    (LayerNorm with bias). With stage0_output_norm=False, norm0 is an identity (RetinaNet
    starts its FPN at stage 1, so that norm would get no gradient).
    """

    def __init__(self, out_indices: Sequence[int] = (0, 1, 2, 3), stage0_output_norm: bool = True, **kwargs):
        if (not isinstance(out_indices, (list, tuple)) or not out_indices
                or not all(_is_int(i) and 0 <= i < NUM_STAGES for i in out_indices)):
            raise ValueError(f'out_indices must be stage indices from 0 to {NUM_STAGES - 1} (got {out_indices!r})')
        super().__init__(**kwargs)
        self.out_indices = tuple(out_indices)
        for i, dim in enumerate(self.dims):
            keep = i in self.out_indices and (i > 0 or stage0_output_norm)
            self.add_module(f'norm{i}', nn.LayerNorm(dim, eps=1e-6) if keep else nn.Identity())

    def forward(self, x: Tensor) -> List[Tensor]:
        outs = self._run_stages(x, max(self.out_indices))
        norms = [self.norm0, self.norm1, self.norm2, self.norm3]
        return [norms[i](outs[i]).permute(0, 3, 1, 2) for i in self.out_indices]


# ----------------------------------------------------------------------------------------------
# Checkpoints

def checkpoint_filter_fn(state_dict: Dict[str, Tensor], model: nn.Module) -> Dict[str, Tensor]:
    """Adapt an authors' or our own checkpoint to `model`: the one adaptation every load goes
    through (timm's `pretrained=True`, `load_checkpoint`, the dense backbone's init_cfg).

    Unwraps a training checkpoint's 'state_dict' and DDP / compile prefixes and resizes the filter
    bases to the model's filter size (its `img_size`). Into a dense backbone, a classifier
    checkpoint drops its head and final norm, and the stage output norms it lacks keep their
    init. timm's load_pretrained adapts the stem to `in_chans` and drops the classifier when the
    class count differs.
    """
    for key in ('state_dict', 'model'):
        if isinstance(state_dict.get(key), dict):
            state_dict = state_dict[key]
            break
    state_dict = clean_state_dict(state_dict)
    own = model.state_dict()
    out = {}
    for k, v in state_dict.items():
        if k not in own and k.startswith(('head.', 'norm.')) and isinstance(model, DFFormerDense):
            continue
        if k in own and k.endswith('complex_weights') and v.ndim == 4 and v.shape != own[k].shape:
            v = resize_filter_bases(v, tuple(own[k].shape[:2]))
        out[k] = v.contiguous()
    if isinstance(model, DFFormerDense):
        out.update({k: v for k, v in own.items() if k not in out and re.match(r'norm\d\.', k)})
    return out


# ----------------------------------------------------------------------------------------------
# Model zoo

_SIZES = {
    's18': dict(depths=(3, 3, 9, 3), dims=(64, 128, 320, 512)),
    's36': dict(depths=(3, 12, 18, 3), dims=(64, 128, 320, 512)),
    'm36': dict(depths=(3, 12, 18, 3), dims=(96, 192, 384, 576)),
    'b36': dict(depths=(3, 12, 18, 3), dims=(128, 256, 512, 768)),
}
_CONV_THEN_DYNAMIC = ('sepconv', 'sepconv', 'dynamic_filter', 'dynamic_filter')

# name -> (size, extra constructor args): the whole zoo in one table.
MODEL_ARCHS = {
    **{f'dfformer_{s}': (s, dict(token_mixers='dynamic_filter')) for s in _SIZES},
    **{f'cdfformer_{s}': (s, dict(token_mixers=_CONV_THEN_DYNAMIC)) for s in _SIZES},
    'gfformer_s18': ('s18', dict(token_mixers='global_filter')),
    'dfformer_s18_k2': ('s18', dict(token_mixers='dynamic_filter', mixer_kwargs=dict(num_filters=2))),
    'dfformer_s18_d8': ('s18', dict(token_mixers='dynamic_filter', mixer_kwargs=dict(reweight_expansion_ratio=.125))),
    'dfformer_s18_gelu': ('s18', dict(token_mixers='dynamic_filter', act_layer='gelu')),
    'dfformer_s18_relu': ('s18', dict(token_mixers='dynamic_filter', act_layer='relu')),
    'dfformer_s18_afno': ('s18', dict(token_mixers='afno')),
}

RELEASE_URL = 'https://github.com/okojoalg/dfformer/releases/download/weights/{}.pth'
RELEASED = [f'{family}_{s}' for family in ('dfformer', 'cdfformer') for s in _SIZES]


def arch_args(name: str) -> Dict:
    """Constructor arguments of a zoo model (used by the dense backbones too)."""
    if name not in MODEL_ARCHS:
        raise ValueError(f'unknown DFFormer model {name!r}; choose from {sorted(MODEL_ARCHS)}')
    size, extra = MODEL_ARCHS[name]
    return dict(**_SIZES[size], **extra)


def _cfg(url: str = '', **kwargs) -> Dict:
    return {
        'url': url, 'num_classes': 1000, 'input_size': (3, 224, 224), 'pool_size': (7, 7),
        'crop_pct': 1.0, 'interpolation': 'bicubic', 'mean': IMAGENET_DEFAULT_MEAN, 'std': IMAGENET_DEFAULT_STD,
        'first_conv': 'downsample_layers.0.conv', 'classifier': 'head.fc2',
        'license': 'mit', 'paper_ids': 'arXiv:2303.03932',
        **kwargs,
    }


# Released ImageNet-1k weights are tagged `.in1k` (the untagged name resolves to them); the
# ablations have no released weights.
default_cfgs = generate_default_cfgs({
    **{f'{name}.in1k': _cfg(RELEASE_URL.format(name)) for name in RELEASED},
    **{name: _cfg() for name in MODEL_ARCHS if name not in RELEASED},
})


def _create_dfformer(variant: str, pretrained: bool = False, **kwargs) -> DFFormer:
    out_indices = kwargs.pop('out_indices', (0, 1, 2, 3))
    return build_model_with_cfg(
        DFFormer, variant, pretrained,
        pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg=dict(out_indices=out_indices, feature_cls='getter'),
        **{**arch_args(variant), **kwargs},
    )


@register_model
def dfformer_s18(pretrained: bool = False, **kwargs) -> DFFormer:
    return _create_dfformer('dfformer_s18', pretrained=pretrained, **kwargs)


@register_model
def dfformer_s36(pretrained: bool = False, **kwargs) -> DFFormer:
    return _create_dfformer('dfformer_s36', pretrained=pretrained, **kwargs)


@register_model
def dfformer_m36(pretrained: bool = False, **kwargs) -> DFFormer:
    return _create_dfformer('dfformer_m36', pretrained=pretrained, **kwargs)


@register_model
def dfformer_b36(pretrained: bool = False, **kwargs) -> DFFormer:
    return _create_dfformer('dfformer_b36', pretrained=pretrained, **kwargs)


@register_model
def cdfformer_s18(pretrained: bool = False, **kwargs) -> DFFormer:
    return _create_dfformer('cdfformer_s18', pretrained=pretrained, **kwargs)


@register_model
def cdfformer_s36(pretrained: bool = False, **kwargs) -> DFFormer:
    return _create_dfformer('cdfformer_s36', pretrained=pretrained, **kwargs)


@register_model
def cdfformer_m36(pretrained: bool = False, **kwargs) -> DFFormer:
    return _create_dfformer('cdfformer_m36', pretrained=pretrained, **kwargs)


@register_model
def cdfformer_b36(pretrained: bool = False, **kwargs) -> DFFormer:
    return _create_dfformer('cdfformer_b36', pretrained=pretrained, **kwargs)


@register_model
def gfformer_s18(pretrained: bool = False, **kwargs) -> DFFormer:
    return _create_dfformer('gfformer_s18', pretrained=pretrained, **kwargs)


@register_model
def dfformer_s18_k2(pretrained: bool = False, **kwargs) -> DFFormer:
    return _create_dfformer('dfformer_s18_k2', pretrained=pretrained, **kwargs)


@register_model
def dfformer_s18_d8(pretrained: bool = False, **kwargs) -> DFFormer:
    return _create_dfformer('dfformer_s18_d8', pretrained=pretrained, **kwargs)


@register_model
def dfformer_s18_gelu(pretrained: bool = False, **kwargs) -> DFFormer:
    return _create_dfformer('dfformer_s18_gelu', pretrained=pretrained, **kwargs)


@register_model
def dfformer_s18_relu(pretrained: bool = False, **kwargs) -> DFFormer:
    return _create_dfformer('dfformer_s18_relu', pretrained=pretrained, **kwargs)


@register_model
def dfformer_s18_afno(pretrained: bool = False, **kwargs) -> DFFormer:
    return _create_dfformer('dfformer_s18_afno', pretrained=pretrained, **kwargs)

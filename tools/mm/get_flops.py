#!/usr/bin/env python3
"""MACs and parameters of a config's network, without data pre- and post-processing (as
mmseg's and mmdet's get_flops), counted by models/flops.py (FFTs and complex products included).

    .venv/bin/python segmentation/tools/get_flops.py CONFIG --shape 512 512
"""
import argparse

import torch
from mmengine.registry import MODELS, init_default_scope

from engine.cli import ArgumentParser, check_numbers
from mmadapter.runner import add_common_args, load_config, user_errors_as_one_line
from models.flops import MAC_CONVENTION, count_macs


class TensorForward(torch.nn.Module):
    """The segmentor / detector as a tensor-in, tensor-out network (its `_forward`)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model._forward(x)


def main(argv=None):
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('config')
    p.add_argument('--shape', type=int, nargs='+', default=[512, 512], help='input H W')
    add_common_args(p)
    args = p.parse_args(argv)
    check_numbers(p, args)
    if len(args.shape) > 2:
        p.error(f'--shape {" ".join(map(str, args.shape))}: pass the input height and width (or one size for both)')
    cfg = load_config(args, writes=False)
    cfg.model.backbone.init_cfg = None
    init_default_scope(cfg.default_scope)
    model = MODELS.build(cfg.model).eval()
    h, w = args.shape if len(args.shape) == 2 else args.shape * 2
    macs, _ = count_macs(TensorForward(model), (h, w))
    params = sum(p.numel() for p in model.parameters())
    print(f'{args.config}: input {h}x{w}  MACs {macs / 1e9:.2f} G  params {params / 1e6:.2f} M')
    print(f'MAC convention: {MAC_CONVENTION}')
    return macs, params


if __name__ == '__main__':
    with user_errors_as_one_line():
        main()

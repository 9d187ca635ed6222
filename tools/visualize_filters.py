#!/usr/bin/env python3
"""Plot the frequency filters of a DFFormer / GFFormer: per stage, the magnitude of the filter
bases (first block of the stage) and of the dynamic filter actually applied to an image
(mean over channels of |K|, K = routing-weighted mix of the bases).

    .venv/bin/python tools/visualize_filters.py --model dfformer_s18 --checkpoint dfformer_s18.pth \
        --image cat.jpg --out filters.png

Frequencies are shown with the zero frequency at the centre of the vertical axis (rFFT: the
horizontal axis holds the non-negative half).
"""
import argparse
import os
import sys

import timm
import torch
from PIL import Image
from timm.data import create_transform, resolve_data_config

import models
from engine.cli import ArgumentParser, check_numbers
from models.layers import DynamicFilter


def collect_filters(model, image: torch.Tensor):
    """[(stage, bases |B| (N, h, w) or None, applied |K| mean over channels (h, w))] per filtering stage."""
    captured = {}

    def hook(name):
        def fn(module, inputs, output):
            if name in captured:
                return
            filters = module.filters(inputs[0])
            applied = (filters if module.reweight is None else filters[0]).abs().mean(0)
            bases = torch.view_as_complex(module.complex_weights.contiguous()).abs().permute(2, 0, 1)
            captured[name] = (None if module.reweight is None else bases, applied)
        return fn

    handles = []
    for i, stage in enumerate(model.stages):
        mixer = stage[0].token_mixer
        if isinstance(mixer, DynamicFilter):  # (GlobalFilter included)
            handles.append(mixer.register_forward_hook(hook(i)))
    with torch.no_grad():
        model(image)
    for h in handles:
        h.remove()
    return [(i, *captured[i]) for i in sorted(captured)]


def plot_filters(filters, out: str, title: str = ''):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    if not filters:
        raise SystemExit('error: this model has no frequency filters (SepConv / AFNO stages only)')
    cols = 1 + max((b.shape[0] if b is not None else 0) for _, b, _ in filters)
    fig, axes = plt.subplots(len(filters), cols, figsize=(2.2 * cols, 2.2 * len(filters)), squeeze=False)
    for row, (stage, bases, applied) in enumerate(filters):
        panels = ([(f'stage {stage + 1} basis {n + 1}', bases[n]) for n in range(bases.shape[0])] if bases is not None
                  else []) + [(f'stage {stage + 1} applied', applied)]
        for col in range(cols):
            ax = axes[row][col]
            ax.axis('off')
            if col < len(panels):
                name, values = panels[col]
                ax.imshow(torch.fft.fftshift(values, dim=0).cpu().numpy(), cmap='viridis')
                ax.set_title(name, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def main(argv=None):
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--model', default='dfformer_s18')
    p.add_argument('--checkpoint', default='', help='weights (default: random init, or --pretrained)')
    p.add_argument('--pretrained', action='store_true')
    p.add_argument('--num-classes', type=int, default=None, help='classes of the checkpoint (default 1000)')
    p.add_argument('--image', required=True)
    p.add_argument('--img-size', type=int, default=224)
    p.add_argument('--out', default='filters.png')
    args = p.parse_args(argv)
    check_numbers(p, args)
    if args.model not in models.MODEL_ARCHS:
        p.error(f'unknown model {args.model!r}; choose from {", ".join(sorted(models.MODEL_ARCHS))}')
    if not os.path.isfile(args.image):
        p.error(f'image {args.image} does not exist')
    model = timm.create_model(args.model, pretrained=args.pretrained, num_classes=args.num_classes or 1000,
                              img_size=args.img_size).eval()
    if args.checkpoint:
        models.load_checkpoint(model, args.checkpoint)
    config = resolve_data_config({'input_size': (3, args.img_size, args.img_size)}, model=model)
    image = create_transform(**config)(Image.open(args.image).convert('RGB')).unsqueeze(0)
    path = plot_filters(collect_filters(model, image), args.out,
                        title=f'{args.model} on {os.path.basename(args.image)}')
    print(f'wrote {path}')


if __name__ == '__main__':
    try:
        main()
    except models.CheckpointError as e:
        sys.exit(f'error: {e}')

#!/usr/bin/env python3
"""Parameters and MACs (FFTs and complex products included) of models at any input size.

    .venv/bin/python tools/flops.py --models dfformer_s18 cdfformer_s18 --img-size 224 512
    .venv/bin/python tools/flops.py --all --markdown     # the model-zoo table of README.md

Convention: see models/flops.py (printed with --convention).
"""
import argparse

import timm

import models
from engine.cli import ArgumentParser, check_numbers
from models.flops import MAC_CONVENTION, count_macs


def main(argv=None):
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--models', nargs='+', default=['dfformer_s18'])
    p.add_argument('--all', action='store_true', help='every model of the DFFormer zoo')
    p.add_argument('--img-size', type=int, nargs='+', default=[224])
    p.add_argument('--markdown', action='store_true', help='print a Markdown table')
    p.add_argument('--convention', action='store_true', help='print the counting convention')
    args = p.parse_args(argv)
    check_numbers(p, args)
    if args.convention:
        print(MAC_CONVENTION)
    names = list(models.MODEL_ARCHS) if args.all else args.models
    unknown = [n for n in names if not timm.is_model(n)]
    if unknown:
        p.error(f'unknown model(s) {unknown}; ours: {sorted(models.MODEL_ARCHS)}')
    if args.markdown:
        print('| model | params (M) | ' + ' | '.join(f'MACs @{s} (G)' for s in args.img_size) + ' |')
        print('| --- | ---: | ' + ' | '.join('---:' for _ in args.img_size) + ' |')
    for name in names:
        model = timm.create_model(name)
        params = sum(p.numel() for p in model.parameters()) / 1e6
        macs = [count_macs(model, size)[0] / 1e9 for size in args.img_size]
        if args.markdown:
            print(f'| {name} | {params:.1f} | ' + ' | '.join(f'{m:.2f}' for m in macs) + ' |')
        else:
            print(f'{name:<20} params {params:7.2f} M  ' + '  '.join(
                f'MACs@{s} {m:7.2f} G' for s, m in zip(args.img_size, macs)))


if __name__ == '__main__':
    main()

#!/usr/bin/env python3
"""Write a checkpoint as a Hugging Face Hub model folder, the way timm publishes its models.

    .venv/bin/python tools/export_hf.py --model dfformer_s18 --checkpoint dfformer_s18.pth \\
        --output-dir hf/dfformer_s18.in1k

The folder holds what timm's push_to_hf_hub uploads: model.safetensors and config.json (timm's
save_for_hf: architecture, model_args, pretrained_cfg with the preprocessing) and a README.md
model card (timm's generate_readme: license, paper, parameters and MACs, usage, citation).
Nothing is uploaded; `huggingface-cli upload <user>/<repo> hf/dfformer_s18.in1k` does that.
The folder is written complete or not at all (built beside it, then renamed).

Loading it needs this repository's `models` package (it registers the architecture with timm):

    import timm, models
    model = timm.create_model('local-dir:hf/dfformer_s18.in1k', pretrained=True)
    model = timm.create_model('hf-hub:<user>/dfformer_s18.in1k', pretrained=True)   # once uploaded

The checkpoint is read by models.load_checkpoint (the authors' .pth, a train.py checkpoint with
--use-ema for its EMA weights, .safetensors); its class count is that of its classifier, or
--num-classes. --class-map (names, one per line) stores label names in config.json.
"""
import argparse
import os
import sys

import timm
import torch
from timm.models import save_for_hf
from timm.models._hub import generate_readme  # (timm exports no public alias)

from engine.cli import ArgumentParser, UsageError, check_input_file, check_model_args, run_cli
from engine.files import atomic_path
from engine.runtime import default_img_size
from engine.weights import add_weights_args, checkpoint_classes
from models import load_checkpoint
from models.flops import count_macs

PAPER_URL = 'https://arxiv.org/abs/2303.03932'
AUTHORS_REPO = 'https://github.com/okojoalg/dfformer'
CITATION = """@inproceedings{tatsunami2024fft,
  title={FFT-based Dynamic Token Mixer for Vision},
  author={Tatsunami, Yuki and Taki, Masato},
  booktitle={Proceedings of the AAAI Conference on Artificial Intelligence},
  year={2024}
}"""
# The authors' repository (code and the released weights, published as assets of its release) is
# under the MIT License.
DEFAULT_LICENSE = 'mit'


def build_parser():
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--model', '-m', required=True, help='architecture, e.g. dfformer_s18')
    p.add_argument('--output-dir', required=True, metavar='DIR', help='folder to create (e.g. hf/dfformer_s18.in1k)')
    add_weights_args(p, checkpoint_help='weights to export', required=True)
    p.add_argument('--num-classes', type=int, default=None, help="default: the checkpoint's classifier rows")
    p.add_argument('--img-size', type=int, default=None,
                   help="input size the filters are built for and the card states (default: the model's, 224)")
    p.add_argument('--class-map', default='', help='file of class names, one per line, stored as label_names')
    p.add_argument('--dataset', default=None, help='training data named in the card (default: ImageNet-1k '
                                                   'for 1000-class models)')
    p.add_argument('--license', default=DEFAULT_LICENSE, help=f'license in the card and config (default '
                                                              f'{DEFAULT_LICENSE}: the authors\' release)')
    p.add_argument('--force', action='store_true', help='replace an existing --output-dir')
    return p


def model_card(args, model, num_classes: int, img_size: int) -> dict:
    family = 'CDFFormer' if args.model.startswith('cdfformer') else 'DFFormer'
    params = sum(p.numel() for p in model.parameters()) / 1e6
    macs = count_macs(model, img_size)[0] / 1e9
    mixers = ('separable convolutions in stages 1-2 and dynamic filters in stages 3-4'
              if family == 'CDFFormer' else 'dynamic filters')
    details = {
        'Model Type': 'Image classification / feature backbone',
        'Model Stats': {
            'Params (M)': f'{params:.1f}',
            'GMACs': f'{macs:.2f} (FFTs and complex products included)',
            'Image size': f'{img_size} x {img_size}',
        },
        'Papers': {'FFT-based Dynamic Token Mixer for Vision': PAPER_URL},
        'Original': AUTHORS_REPO,
    }
    dataset = args.dataset or ('ImageNet-1k' if num_classes == 1000 else None)
    if dataset:
        details['Dataset'] = dataset
    name = os.path.basename(os.path.normpath(args.output_dir))
    usage = f"""Needs this repository's `models` package, which registers the architecture with timm.

```python
import timm
import torch
from PIL import Image

import models  # registers the DFFormer / CDFFormer architectures

model = timm.create_model('hf-hub:<user>/{name}', pretrained=True)  # or 'local-dir:/path/to/{name}'
model.eval()
config = timm.data.resolve_data_config({{}}, model=model)
transform = timm.data.create_transform(**config)
image = Image.open('image.jpg').convert('RGB')
with torch.no_grad():
    top5_probabilities, top5_class_indices = model(transform(image).unsqueeze(0)).softmax(-1).topk(5)
```
"""
    return {
        'license': args.license,
        'tags': ['image-classification', 'timm'],
        'description': (
            f'A {family} image classification model ({args.model}): a MetaFormer whose token mixer is '
            f'{mixers}, filtering the 2D FFT of the features with per-image mixtures of learned global '
            f'filters. Weights: `{os.path.basename(args.checkpoint)}`.'),
        'details': details,
        'usage': usage,
        'citation': CITATION,
    }


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    check_model_args(parser, args)  # model name, --num-classes, --img-size
    check_input_file(parser, '--checkpoint', args.checkpoint)
    out = os.path.normpath(args.output_dir)
    if os.path.exists(out) and not (os.path.isdir(out) and not os.listdir(out)) and not args.force:
        parser.error(f'--output-dir {out} already exists: pass another folder, or --force to replace it')
    check_input_file(parser, '--class-map', args.class_map)

    rows, _ = checkpoint_classes(args)
    num_classes = args.num_classes or rows or 1000
    label_names = None
    if args.class_map:
        with open(args.class_map, encoding='utf-8') as f:
            label_names = [line.strip() for line in f if line.strip()]
        if len(label_names) != num_classes:
            raise UsageError(f'--class-map {args.class_map} names {len(label_names)} classes, the model has '
                             f'{num_classes}: give one name per class, in class order')
    img_size = args.img_size or default_img_size(args.model)

    model = timm.create_model(args.model, pretrained=False, num_classes=num_classes, img_size=img_size)
    load_checkpoint(model, args.checkpoint, use_ema=args.use_ema)
    model.eval()

    model_config = {'pretrained_cfg': {'license': args.license}}
    if label_names:
        model_config['label_names'] = label_names
    with atomic_path(out) as tmp:  # (replaces --force's folder, or an empty one)
        save_for_hf(model, tmp, model_config=model_config, safe_serialization=True,
                    data_config={'input_size': (3, img_size, img_size)})
        card = generate_readme(model_card(args, model, num_classes, img_size), os.path.basename(out))
        with open(os.path.join(tmp, 'README.md'), 'w', encoding='utf-8') as f:
            f.write(card)
        umask = os.umask(0)
        os.umask(umask)
        for name in os.listdir(tmp):  # (safetensors creates its file private)
            os.chmod(os.path.join(tmp, name), 0o666 & ~umask)
    print(f'=> Wrote {out}: ' + ', '.join(sorted(os.listdir(out))))
    print(f"   timm.create_model('local-dir:{out}', pretrained=True) loads it (after `import models`)")
    sys.stdout.flush()
    return out


if __name__ == '__main__':
    torch.set_grad_enabled(False)
    run_cli(main)

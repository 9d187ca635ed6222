#!/usr/bin/env python3
"""Strip a train.py checkpoint down to its weights for release (timm's clean_checkpoint.py).

    .venv/bin/python tools/clean_checkpoint.py --checkpoint output/train/run/model_best.pth.tar \\
        --output dfformer_s18.pth
        => dfformer_s18-1a2b3c4d.pth  (the first 8 hex digits of the file's SHA-256)
    .venv/bin/python tools/clean_checkpoint.py --checkpoint model_best.pth.tar --use-ema \\
        --output dfformer_s18.safetensors
    .venv/bin/python tools/clean_checkpoint.py --checkpoint model_best.pth.tar --output dfformer_s18.pth --no-hash

Keeps only the `state_dict` (--use-ema: `state_dict_ema`, an error where there is none): no
optimizer, loss scaler, args or saver state. 'module.' (DDP) and '_orig_mod.' (torch.compile)
prefixes are removed. Any file models.load_checkpoint reads works as input (read with
torch.load(weights_only=True) or safetensors). The output is a .pth (torch.save of a dict of
tensors) or a .safetensors file (--safetensors, or by the --output extension), named
<output stem>-<first 8 hex digits of its SHA-256><ext> unless --no-hash, written complete or
not at all; its SHA-256 is printed.
"""
import argparse
import hashlib
import io
import os
import sys

import torch

from engine.cli import ArgumentParser, run_cli
from engine.files import atomic_open
from models.checkpoint import checkpoint_state_dict, read_checkpoint


def serialize(state_dict, safetensors: bool) -> bytes:
    if safetensors:
        from safetensors.torch import save
        return save({k: v.contiguous() for k, v in state_dict.items()}, metadata={'format': 'pt'})
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    return buffer.getvalue()


def build_parser():
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--checkpoint', required=True, metavar='FILE', help='the checkpoint to clean')
    p.add_argument('--output', default='', metavar='FILE',
                   help='output file (.pth or .safetensors); default: the checkpoint name, as .pth')
    p.add_argument('--use-ema', action='store_true', help="keep the EMA weights ('state_dict_ema')")
    p.add_argument('--safetensors', action='store_true', help='write safetensors (also chosen by the extension)')
    p.add_argument('--no-hash', action='store_true', help='do not append the SHA-256 prefix to the file name')
    p.add_argument('--force', action='store_true', help='overwrite an existing output file')
    return p


def output_stem_and_ext(args):
    path = args.output or args.checkpoint
    folder, base = os.path.split(path)
    for ext in ('.pth.tar', '.safetensors', '.pth', '.pt', '.bin', '.tar'):
        if base.endswith(ext):
            base = base[:-len(ext)]
            break
    else:
        base = os.path.splitext(base)[0] or base
    safetensors = args.safetensors or (args.output or '').endswith('.safetensors')
    return os.path.join(folder, base), '.safetensors' if safetensors else '.pth'


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if os.path.isdir(args.checkpoint):
        parser.error(f'--checkpoint {args.checkpoint} is a folder: pass a checkpoint file '
                     f'(e.g. {os.path.join(args.checkpoint, "model_best.pth.tar")})')
    if not os.path.isfile(args.checkpoint):
        parser.error(f'--checkpoint {args.checkpoint}: no such file')
    if args.output and os.path.isdir(args.output):
        parser.error(f'--output {args.output} is a folder: pass a file name '
                     f'(e.g. {os.path.join(args.output, "model.pth")})')
    if args.safetensors and args.output and not args.output.endswith('.safetensors') and args.no_hash:
        parser.error(f'--safetensors with --no-hash writes {args.output} as is: name it *.safetensors')
    stem, ext = output_stem_and_ext(args)

    print(f"=> Loading {'EMA weights of ' if args.use_ema else ''}{args.checkpoint}")
    # (checkpoint_state_dict picks the weights and strips the 'module.' / '_orig_mod.' prefixes)
    state_dict = checkpoint_state_dict(read_checkpoint(args.checkpoint), args.checkpoint, use_ema=args.use_ema)
    state_dict = {k: v.detach().cpu() for k, v in state_dict.items()}
    data = serialize(state_dict, safetensors=ext == '.safetensors')
    digest = hashlib.sha256(data).hexdigest()
    if args.no_hash:
        final = args.output if args.output else stem + ext
    else:
        final = f'{stem}-{digest[:8]}{ext}'
    if os.path.abspath(final) == os.path.abspath(args.checkpoint):
        parser.error(f'the output {final} would replace the checkpoint: pass another --output')
    if os.path.exists(final) and not args.force:
        parser.error(f'{final} already exists: pass another --output, or --force to replace it')
    if os.path.dirname(final):
        os.makedirs(os.path.dirname(final), exist_ok=True)
    with atomic_open(final, 'wb') as f:
        f.write(data)
    print(f'=> Saved {len(state_dict)} tensors to {final}, SHA256: {digest}')
    sys.stdout.flush()
    return final, digest


if __name__ == '__main__':
    run_cli(main)

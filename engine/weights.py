"""Where a script's model weights come from: the --checkpoint / --use-ema options (--pretrained is
a model option, engine.cli.add_model_args) and their check, a checkpoint read before any work with
its class count, and the model created with released weights whose download failed as one line."""
import argparse
import http.client
import os
import urllib.error
from typing import Any, Optional, Tuple

import timm
import torch
import torch.nn as nn

from models import CheckpointError
from models.checkpoint import check_checkpoint, checkpoint_state_dict, first_line

from .cli import UsageError, check_input_file

# What a failed download of released weights raises (urllib wraps socket errors in URLError;
# a connection lost while reading raises the others).
DOWNLOAD_ERRORS = (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError)


class PretrainedWeightsError(CheckpointError):
    """Released weights that could not be downloaded (no network, HTTP error)."""

    def __init__(self, model_name: str, url: str, reason: BaseException):
        self.model_name, self.url = model_name, url
        self.filename = os.path.basename(url)
        self.cache_dir = os.path.join(torch.hub.get_dir(), 'checkpoints')
        super().__init__(
            f'could not download the pretrained weights of {model_name} from {url} ({first_line(reason)}); '
            f'without network, download {self.filename} elsewhere and put it in {self.cache_dir}/ '
            '(where --pretrained / pretrained=True finds it), or load that local file')

    def with_hint(self, how: str) -> str:
        """The message ending in the command-line way of loading the local file."""
        return f'{self}: {how}'


def add_weights_args(parser: argparse.ArgumentParser, checkpoint_help: str = 'weights (.pth, train.py .pth.tar, '
                     '.safetensors)', required: bool = False):
    g = parser.add_argument_group('weights')
    g.add_argument('--checkpoint', default='', required=required, metavar='FILE', help=checkpoint_help)
    g.add_argument('--use-ema', action='store_true', help='the EMA weights of a train.py checkpoint')


def check_weights_args(parser: argparse.ArgumentParser, args: argparse.Namespace, required: bool = False,
                       folder_ok: bool = False):
    """One source of weights at most, --checkpoint FILE or --pretrained (exactly one if `required`);
    the checkpoint exists (a folder of them if `folder_ok`); --use-ema only with --checkpoint."""
    if required and not args.checkpoint and not args.pretrained:
        parser.error('no weights: pass --checkpoint FILE (e.g. dfformer_s18.pth) or --pretrained')
    if args.checkpoint and args.pretrained:
        parser.error('give the weights once: --checkpoint FILE or --pretrained')
    check_input_file(parser, '--checkpoint', args.checkpoint, folder_ok=folder_ok)
    if args.use_ema and not args.checkpoint:
        parser.error('--use-ema needs --checkpoint (the training checkpoint whose EMA weights to evaluate)')


def check_checkpoint_file(flag: str, path: str, model_name: str, use_ema: bool = False) -> Any:
    """Read a checkpoint before any work: an unreadable file, or a train.py checkpoint of another
    model, is a one-line error. Returns the file's content (memory-mapped tensors)."""
    try:
        checkpoint = check_checkpoint(path, use_ema=use_ema)
    except CheckpointError as e:  # (its message starts with the path)
        raise CheckpointError(f'{flag} {e}') from None
    saved = checkpoint.get('args') if isinstance(checkpoint.get('args'), dict) else {}
    if saved.get('model') and saved['model'] != model_name:
        raise UsageError(f'{flag} {path} is a checkpoint of {saved["model"]}, this run builds {model_name}: '
                         f'pass --model {saved["model"]}')
    return checkpoint


def checkpoint_classes(args) -> Tuple[Optional[int], dict]:
    """(class count, saved train.py options) of --checkpoint, read and checked before any work
    (check_checkpoint_file): the rows of its classifier (the pretrained config's `classifier`),
    None without one."""
    checkpoint = check_checkpoint_file('--checkpoint', args.checkpoint, args.model, use_ema=args.use_ema)
    state_dict = checkpoint_state_dict(checkpoint, args.checkpoint, use_ema=args.use_ema)
    classifier = timm.models.get_pretrained_cfg_value(args.model, 'classifier') or ''
    weight = state_dict.get(f'{classifier}.weight')
    saved = checkpoint.get('args') if isinstance(checkpoint.get('args'), dict) else {}
    return (weight.shape[0] if weight is not None and weight.ndim == 2 else None), saved


def create_model(args, local_flag: str = '--checkpoint', **kwargs) -> nn.Module:
    """timm.create_model(args.model, pretrained=args.pretrained, **kwargs). Released weights that
    cannot be downloaded are a one-line CheckpointError ending in how to load them from a file
    with `local_flag` instead."""
    try:
        return timm.create_model(args.model, pretrained=args.pretrained, **kwargs)
    except DOWNLOAD_ERRORS as e:
        if not args.pretrained:
            raise
        error = PretrainedWeightsError(args.model, timm.models.get_pretrained_cfg_value(args.model, 'url'), e)
        raise CheckpointError(error.with_hint(f'{local_flag} {error.filename} instead of --pretrained')) from None

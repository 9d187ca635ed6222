"""Where a script's model weights come from: the --checkpoint / --use-ema options (--pretrained is
a model option, engine.cli.add_model_args) and their check, a checkpoint read before any work with
its class count, and the model created with released weights (whose download failed as one line)
or with a local file standing in for them (train.py's --pretrained-path)."""
import argparse
import http.client
import os
import urllib.error
from typing import Any, Dict, Optional, Tuple

import timm
import torch
import torch.nn as nn

from models import CheckpointError
from models.checkpoint import check_checkpoint, checkpoint_state_dict, first_line, fit_problems
from models.dfformer import checkpoint_filter_fn

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


def classifier_keys(model_name: str) -> Tuple[str, str]:
    """The state_dict keys of a model's classifier (its pretrained config's `classifier`)."""
    classifier = timm.models.get_pretrained_cfg_value(model_name, 'classifier') or ''
    return f'{classifier}.weight', f'{classifier}.bias'


def classifier_rows(model_name: str, state_dict: Dict[str, torch.Tensor]) -> Optional[int]:
    """The class count of `state_dict`'s classifier for `model_name`; None without one."""
    weight = state_dict.get(classifier_keys(model_name)[0])
    return weight.shape[0] if weight is not None and weight.ndim == 2 else None


def checkpoint_classes(args) -> Tuple[Optional[int], dict]:
    """(class count, saved train.py options) of --checkpoint, read and checked before any work
    (check_checkpoint_file): the rows of its classifier, None without one."""
    checkpoint = check_checkpoint_file('--checkpoint', args.checkpoint, args.model, use_ema=args.use_ema)
    state_dict = checkpoint_state_dict(checkpoint, args.checkpoint, use_ema=args.use_ema)
    saved = checkpoint.get('args') if isinstance(checkpoint.get('args'), dict) else {}
    return classifier_rows(args.model, state_dict), saved


def use_checkpoint_defaults(args):
    """The class count and input size of --checkpoint where the options leave them unset, read and
    checked before any work (checkpoint_classes): args.num_classes becomes its classifier rows,
    args.img_size / args.input_size a train.py checkpoint's --img-size / --input-size (the size its
    filters were trained for). Used by inference.py and the ONNX scripts alike; nothing without
    --checkpoint."""
    if not args.checkpoint:
        return
    rows, saved = checkpoint_classes(args)
    if args.num_classes is None:
        args.num_classes = rows
    if args.img_size is None and args.input_size is None:
        args.img_size, args.input_size = saved.get('img_size'), saved.get('input_size')


def pretrained_file_weights(args) -> Dict[str, torch.Tensor]:
    """The weights in --pretrained-path (memory-mapped), read and checked before any work: an
    unreadable file or a train.py checkpoint of another model is a one-line error."""
    checkpoint = check_checkpoint_file('--pretrained-path', args.pretrained_path, args.model)
    return checkpoint_state_dict(checkpoint, args.pretrained_path)


def _create_from_file(args, **kwargs) -> nn.Module:
    """timm.create_model with --pretrained-path as the pretrained weights, loaded by timm as
    released weights are (pretrained_cfg_overlay, as timm's train.py does): checkpoint_filter_fn
    resizes the filters, timm adapts the stem to in_chans and re-initialises the classifier when
    the file's class count differs from the model's. timm then loads non-strictly, and a file of
    another model would leave layers at their random init unnoticed: every tensor but a
    re-initialised classifier must load, or it is a one-line CheckpointError."""
    path = args.pretrained_path
    state_dict = pretrained_file_weights(args)
    rows = classifier_rows(args.model, state_dict)
    # the overlay's num_classes is the file's, so timm re-initialises the classifier only for
    # another class count (timm's train.py passes -1: always)
    overlay = dict(file=path, num_classes=rows or -1)
    failed = None
    try:
        model = timm.create_model(args.model, pretrained=True, pretrained_cfg_overlay=overlay, **kwargs)
    except RuntimeError as e:  # torch's load_state_dict: missing keys or tensors of another shape
        if not str(e).startswith('Error(s) in loading state_dict'):
            raise
        failed, model = e, timm.create_model(args.model, **kwargs)  # (only to say what does not fit)
    if failed is None and rows == model.num_classes:
        return model  # loaded strictly
    skip = classifier_keys(args.model) if rows != model.num_classes else ()
    problems = fit_problems(model.state_dict(), checkpoint_filter_fn(dict(state_dict), model), skip=skip)
    if problems:
        raise CheckpointError(f'--pretrained-path {path} does not fit {args.model}: {problems}; is it weights of '
                              'another model? (the classifier and the filter size are adapted)')
    if failed is not None:
        raise failed
    return model


def create_model(args, local_flag: str = '--checkpoint', **kwargs) -> nn.Module:
    """timm.create_model(args.model, pretrained=args.pretrained, **kwargs), or with the file
    args.pretrained_path (train.py) as the pretrained weights (_create_from_file). Released weights
    that cannot be downloaded are a one-line CheckpointError ending in how to load them from a file
    with `local_flag` instead."""
    if getattr(args, 'pretrained_path', ''):
        return _create_from_file(args, **kwargs)
    try:
        return timm.create_model(args.model, pretrained=args.pretrained, **kwargs)
    except DOWNLOAD_ERRORS as e:
        if not args.pretrained:
            raise
        error = PretrainedWeightsError(args.model, timm.models.get_pretrained_cfg_value(args.model, 'url'), e)
        raise CheckpointError(error.with_hint(f'{local_flag} {error.filename} instead of --pretrained')) from None

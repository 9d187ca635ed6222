"""Loading a checkpoint file into a model, with one-line errors.

Files are read by timm's reader (`weights_only=True` torch.load, or safetensors) and adapted
by `checkpoint_filter_fn`, the same adaptation timm applies for `pretrained=True`; then every
tensor must fit. A file that cannot be read or does not fit raises a CheckpointError whose
one-line message names the file and what to do.
"""
import os
from typing import Dict

import torch
import torch.nn as nn
from timm.models import load_state_dict

from .dfformer import checkpoint_filter_fn

__all__ = ['CheckpointError', 'load_checkpoint', 'load_state_dict_checked', 'first_line']


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be read or does not fit the model."""


def first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _examples(names) -> str:
    names = sorted(names)
    return ', '.join(names[:3]) + (', ...' if len(names) > 3 else '')


def load_state_dict_checked(model: nn.Module, state_dict: Dict[str, torch.Tensor], source: str) -> nn.Module:
    """Adapt `state_dict` with checkpoint_filter_fn and load it strictly, or raise a CheckpointError
    that says which tensors are missing, unexpected or of another shape."""
    state_dict = checkpoint_filter_fn(state_dict, model)
    own = model.state_dict()
    missing = set(own) - set(state_dict)
    unexpected = set(state_dict) - set(own)
    reshaped = {k for k in set(own) & set(state_dict) if own[k].shape != state_dict[k].shape}
    if missing or unexpected or reshaped:
        problems = [f'{len(s)} {what} ({_examples(s)})' for s, what in (
            (missing, 'missing'), (unexpected, 'unexpected'), (reshaped, 'of another shape')) if s]
        raise CheckpointError(
            f'{source} does not fit {type(model).__name__}: ' + '; '.join(problems)
            + '; is it a checkpoint of another model, class count or input size?')
    model.load_state_dict(state_dict, strict=True)
    return model


def _has_ema(path: str) -> bool:
    if path.endswith('.safetensors'):
        return False
    checkpoint = torch.load(path, map_location='cpu', weights_only=True, mmap=True)
    return isinstance(checkpoint, dict) and any(
        isinstance(checkpoint.get(k), dict) for k in ('state_dict_ema', 'model_ema'))


def load_checkpoint(model: nn.Module, path: str, use_ema: bool = False) -> nn.Module:
    """Load the authors' .pth, a train.py checkpoint (its EMA weights with `use_ema`) or a
    .safetensors file into `model`."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f'{path}: no such checkpoint file')
    try:
        if use_ema and not _has_ema(path):
            raise CheckpointError(f'{path}: has no EMA weights (state_dict_ema); drop --use-ema')
        state_dict = load_state_dict(path, use_ema=use_ema)
    except CheckpointError:
        raise
    except Exception as e:  # truncated zip, not a checkpoint, pickled objects, ...
        raise CheckpointError(
            f'{path}: cannot read checkpoint ({first_line(e)}); '
            'if it was downloaded, delete it and download it again') from None
    if not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise CheckpointError(f'{path}: not a state_dict of tensors')
    return load_state_dict_checked(model, state_dict, path)

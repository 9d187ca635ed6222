"""Safe checkpoint reading and loading with one-line, actionable errors.

Every checkpoint is read with `weights_only=True` (or safetensors): nothing is unpickled
beyond tensors and plain containers.
"""
import os
from typing import Callable, Dict, Optional, Sequence

import torch
import torch.nn as nn

__all__ = ['CheckpointError', 'read_state_dict', 'load_checkpoint']


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be read or does not fit the model."""


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def read_state_dict(path: str, use_ema: bool = False) -> Dict[str, torch.Tensor]:
    """The state_dict in `path`: a plain state_dict (the authors' release), a timm training
    checkpoint ('state_dict', optionally 'state_dict_ema') or a .safetensors file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f'{path}: no such checkpoint file')
    try:
        if path.endswith('.safetensors'):
            import safetensors.torch
            checkpoint = safetensors.torch.load_file(path, device='cpu')
        else:
            checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:  # truncated zip, not a checkpoint, pickled objects, ...
        raise CheckpointError(
            f'{path}: cannot read checkpoint ({_first_line(e)}); '
            'if it was downloaded, delete it and download it again') from None
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f'{path}: expected a state_dict, found {type(checkpoint).__name__}')
    for key in (('state_dict_ema', 'model_ema') if use_ema else ()) + ('state_dict', 'model'):
        if isinstance(checkpoint.get(key), dict):
            checkpoint = checkpoint[key]
            break
    else:
        if use_ema:
            raise CheckpointError(f'{path}: has no EMA weights (state_dict_ema); drop --use-ema')
    state_dict = {}
    for k, v in checkpoint.items():
        if not isinstance(v, torch.Tensor):
            raise CheckpointError(f'{path}: entry {k!r} is a {type(v).__name__}, not a tensor')
        state_dict[k[len('module.'):] if k.startswith('module.') else k] = v
    return state_dict


def _examples(names) -> str:
    names = sorted(names)
    return ', '.join(names[:3]) + (', ...' if len(names) > 3 else '')


def load_checkpoint(
        model: nn.Module,
        path: str,
        filter_fn: Optional[Callable] = None,
        use_ema: bool = False,
        strict: bool = True,
        allow_missing: Sequence[str] = (),
) -> nn.Module:
    """Load `path` into `model` (after `filter_fn(state_dict, model)`), or raise a CheckpointError
    that says which tensors are missing, unexpected or of another shape. Missing tensors whose
    names start with one of `allow_missing` keep their initialisation."""
    state_dict = read_state_dict(path, use_ema=use_ema)
    if filter_fn is not None:
        state_dict = filter_fn(state_dict, model)
    own = model.state_dict()
    missing = {k for k in set(own) - set(state_dict) if not k.startswith(tuple(allow_missing))}
    unexpected = set(state_dict) - set(own)
    reshaped = {k for k in set(own) & set(state_dict) if own[k].shape != state_dict[k].shape}
    if reshaped or unexpected or (strict and missing):
        problems = [f'{len(s)} {what} ({_examples(s)})' for s, what in (
            (missing, 'missing'), (unexpected, 'unexpected'), (reshaped, 'of another shape')) if s]
        raise CheckpointError(
            f'{path} does not fit {type(model).__name__}: ' + '; '.join(problems)
            + '; is it a checkpoint of another model?')
    model.load_state_dict(state_dict, strict=False)  # every mismatch was reported above
    return model

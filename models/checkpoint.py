"""Loading a checkpoint file into a model, with one-line errors.

Files are read with `weights_only=True` torch.load (or safetensors) and adapted by
`checkpoint_filter_fn`, the same adaptation timm applies for `pretrained=True`; then every
tensor must fit. A file that cannot be read or does not fit raises a CheckpointError whose
one-line message names the file and what to do.
"""
import os
from typing import Any, Dict

import torch
import torch.nn as nn
from timm.models import clean_state_dict

from .dfformer import checkpoint_filter_fn

__all__ = [
    'CheckpointError', 'check_checkpoint', 'checkpoint_state_dict', 'first_line', 'fit_problems', 'has_ema',
    'load_checkpoint', 'load_state_dict_checked', 'read_checkpoint',
]


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be read or does not fit the model."""


def first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _examples(names) -> str:
    names = sorted(names)
    return ', '.join(names[:3]) + (', ...' if len(names) > 3 else '')


def _unreadable(path: str, error: BaseException) -> str:
    """Why `path` could not be read, as the end of a one-line message."""
    with open(path, 'rb') as f:
        head = f.read(8)
    if not head:
        return 'cannot read checkpoint (the file is empty); if it was downloaded, download it again'
    if head.startswith(b'PK') or path.endswith('.safetensors'):
        reason = first_line(error).split('. ')[0]  # (torch goes on about miniz and how files get corrupted)
        return (f'cannot read checkpoint (truncated or damaged: {reason}); '
                'if it was downloaded, delete it and download it again')
    if head.startswith(b'\x80'):  # a pickle: torch's legacy format, or objects weights_only refuses
        return (f'cannot read checkpoint ({first_line(error)}); '
                'if it was downloaded, delete it and download it again')
    return (f'cannot read checkpoint: not a PyTorch or safetensors file (it starts with {head!r}); '
            'pass a file written by torch.save or train.py')


def read_checkpoint(path: str) -> Any:
    """The content of a checkpoint file: `weights_only=True` torch.load (memory-mapped where the
    format allows, so reading a training checkpoint's args is cheap) or safetensors."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f'{path}: no such checkpoint file')
    try:
        if path.endswith('.safetensors'):
            from safetensors.torch import load_file
            return load_file(path, device='cpu')
        with open(path, 'rb') as f:
            zipped = f.read(2) == b'PK'
        return torch.load(path, map_location='cpu', weights_only=True, mmap=zipped)
    except Exception as e:  # truncated zip, not a checkpoint, pickled objects, ...
        raise CheckpointError(f'{path}: {_unreadable(path, e)}') from None


def has_ema(path: str) -> bool:
    """Whether a train.py checkpoint holds EMA weights (model_ema: state_dict_ema)."""
    checkpoint = read_checkpoint(path)
    return isinstance(checkpoint, dict) and any(isinstance(checkpoint.get(k), dict) for k in _EMA_KEYS)


_EMA_KEYS = ('state_dict_ema', 'model_ema')


def checkpoint_state_dict(checkpoint: Any, path: str, use_ema: bool = False) -> Dict[str, torch.Tensor]:
    """The model weights in a checkpoint's content: a train.py checkpoint's 'state_dict' (its
    'state_dict_ema' with `use_ema`), a {'model': ...} file or a plain state_dict."""
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f'{path}: not a checkpoint (holds a {type(checkpoint).__name__}, not a dict of tensors)')
    if use_ema:
        key = next((k for k in _EMA_KEYS if isinstance(checkpoint.get(k), dict)), None)
        if key is None:
            raise CheckpointError(f'{path}: has no EMA weights (state_dict_ema); drop --use-ema')
    else:
        key = next((k for k in ('state_dict', 'model') if isinstance(checkpoint.get(k), dict)), None)
    state_dict = checkpoint[key] if key else checkpoint
    if not state_dict or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise CheckpointError(f'{path}: not a state_dict of tensors')
    return clean_state_dict(state_dict)


def check_checkpoint(path: str, use_ema: bool = False) -> Any:
    """Raise the CheckpointError that loading `path` would, short of fitting a model: a cheap
    check before any work (torch files are memory-mapped). Returns the file's content."""
    checkpoint = read_checkpoint(path)
    checkpoint_state_dict(checkpoint, os.fspath(path), use_ema=use_ema)
    return checkpoint


def _filter_sizes(model: nn.Module, state_dict: Dict[str, torch.Tensor]) -> Dict[str, tuple]:
    """{name: (checkpoint filter shape, model filter shape)} of filter bases of another size."""
    own = model.state_dict()
    return {k: (tuple(v.shape[:2]), tuple(own[k].shape[:2])) for k, v in state_dict.items()
            if k.endswith('complex_weights') and k in own and v.ndim == 4 and v.shape[:2] != own[k].shape[:2]}


def load_state_dict_checked(model: nn.Module, state_dict: Dict[str, torch.Tensor], source: str,
                            resize_filters: bool = True) -> nn.Module:
    """Adapt `state_dict` with checkpoint_filter_fn and load it strictly, or raise a CheckpointError
    that says which tensors are missing, unexpected or of another shape. With resize_filters=False
    (resuming a run: the optimizer state has the checkpoint's shapes), filter bases of another
    size are an error instead of being resized."""
    if not resize_filters:
        sizes = _filter_sizes(model, state_dict)
        if sizes:
            key = sorted(sizes)[0]
            (h0, w0), (h1, w1) = sizes[key]
            stride = next(info['reduction'] for info in model.feature_info if key.startswith(info['module'] + '.'))

            def pixels(h, w):  # (an rFFT2 map of h x w is of an h x (2w - 2) or (2w - 1) input)
                return f'{h * stride}x{(w - 1) * 2 * stride}'
            raise CheckpointError(
                f'{source} has filters for {pixels(h0, w0)} px input ({key} {h0}x{w0}), the model for '
                f'{pixels(h1, w1)} px ({h1}x{w1}): a run cannot be resumed at another size (the optimizer '
                "state would not fit); resume at the checkpoint's --img-size, or start a new run from its "
                'weights with --initial-checkpoint')
    state_dict = checkpoint_filter_fn(state_dict, model)
    problems = fit_problems(model.state_dict(), state_dict)
    if problems:
        raise CheckpointError(f'{source} does not fit {type(model).__name__}: {problems}; '
                              'is it a checkpoint of another model, class count or input size?')
    model.load_state_dict(state_dict, strict=True)
    return model


def fit_problems(own: Dict[str, torch.Tensor], state_dict: Dict[str, torch.Tensor], skip=()) -> str:
    """What keeps `state_dict` (already adapted by checkpoint_filter_fn) from loading strictly into
    a model whose state_dict is `own`, e.g. '2 missing (a, b); 1 of another shape (c)'; '' if
    nothing. Keys in `skip` (a classifier being re-initialised) are left out on both sides."""
    own = {k: v for k, v in own.items() if k not in skip}
    state_dict = {k: v for k, v in state_dict.items() if k not in skip}
    missing = set(own) - set(state_dict)
    unexpected = set(state_dict) - set(own)
    reshaped = {k for k in set(own) & set(state_dict) if own[k].shape != state_dict[k].shape}
    return '; '.join(f'{len(s)} {what} ({_examples(s)})' for s, what in (
        (missing, 'missing'), (unexpected, 'unexpected'), (reshaped, 'of another shape')) if s)


def load_checkpoint(model: nn.Module, path: str, use_ema: bool = False, resize_filters: bool = True) -> nn.Module:
    """Load the authors' .pth, a train.py checkpoint (its EMA weights with `use_ema`) or a
    .safetensors file into `model` (see load_state_dict_checked for `resize_filters`)."""
    path = os.fspath(path)
    state_dict = checkpoint_state_dict(read_checkpoint(path), path, use_ema=use_ema)
    return load_state_dict_checked(model, state_dict, path, resize_filters=resize_filters)

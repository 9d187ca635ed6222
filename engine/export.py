"""What onnx_export.py and tools/onnx_validate.py share: their model options, the model they build
from the command line, the input size and the error they compare by."""
import argparse

import torch
from timm.layers import to_2tuple
from timm.utils import ParseKwargs

from models import load_checkpoint

from .cli import UsageError, add_model_args
from .runtime import model_img_size
from .weights import add_weights_args, create_model


class _ParseKwargs(ParseKwargs):
    """timm's KEY=VALUE parser, but an item without '=' is a one-line error (timm's raises inside
    argparse, a traceback)."""

    def __call__(self, parser, namespace, values, option_string=None):
        bad = [v for v in values if v and '=' not in v]
        if bad:
            parser.error(f'{option_string} {bad[0]}: pass KEY=VALUE items (e.g. depths="(1,1,1,1)")')
        super().__call__(parser, namespace, values, option_string)


def add_export_model_args(p: argparse.ArgumentParser, kwargs_help: str):
    """The model options of both scripts: engine.cli's, --model-kwargs and the weights."""
    add_model_args(p)
    p.add_argument('--model-kwargs', nargs='*', default={}, action=_ParseKwargs, help=kwargs_help)
    add_weights_args(p)


def input_size_of(args):
    """(C, H, W) from --input-size, else 3 x the size the model's filters are built for."""
    if args.input_size:
        return tuple(args.input_size)
    return (3, *to_2tuple(model_img_size(args)))


def build_model(args, input_size, img_size) -> torch.nn.Module:
    """The eval model of --model / --model-kwargs with filters built for `img_size` and --num-classes
    classes (engine.weights.use_checkpoint_defaults sets them from --checkpoint), the weights of
    --checkpoint loaded. Seeded: a model without --checkpoint / --pretrained has the same weights
    in both scripts."""
    kwargs = dict(args.model_kwargs)
    if args.num_classes is not None:
        kwargs['num_classes'] = args.num_classes
    if input_size[0] != 3:
        kwargs['in_chans'] = input_size[0]
    torch.manual_seed(0)
    try:
        model = create_model(args, img_size=img_size, **kwargs)
    except (TypeError, ValueError) as e:  # (an unknown or malformed model argument, named by the model)
        raise UsageError(f'--model-kwargs: {e}') from None
    if args.checkpoint:
        load_checkpoint(model, args.checkpoint, use_ema=args.use_ema)
    return model.eval()


def relative_error(reference, output) -> float:
    """max |output - reference| / max |reference| (tensors or arrays), in float64."""
    reference = torch.as_tensor(reference, dtype=torch.float64)
    output = torch.as_tensor(output, dtype=torch.float64)
    return ((output - reference).abs().max() / reference.abs().max().clamp_min(1e-30)).item()

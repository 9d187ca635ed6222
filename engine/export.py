"""What onnx_export.py and tools/onnx_validate.py share: the model they build from the command
line, the input size and the error they compare by."""
import timm
import torch

from models import CheckpointError, PretrainedWeightsError, load_checkpoint
from models.checkpoint import checkpoint_state_dict

from .cli import UsageError, check_checkpoint_file


def input_size_of(args):
    """(C, H, W) from --input-size, else 3 x --img-size (224 by default)."""
    if args.input_size:
        return tuple(args.input_size)
    size = args.img_size or 224
    return 3, size, size


def build_model(args, input_size, img_size) -> torch.nn.Module:
    """The eval model of --model / --model-kwargs with filters built for `img_size`, its class count
    read from --checkpoint (whose weights it loads) unless --num-classes says it. Seeded: a model
    without --checkpoint / --pretrained has the same weights in both scripts."""
    num_classes = args.num_classes
    if args.checkpoint:
        checkpoint = check_checkpoint_file('--checkpoint', args.checkpoint, args.model, use_ema=args.use_ema)
        state_dict = checkpoint_state_dict(checkpoint, args.checkpoint, use_ema=args.use_ema)
        classifier = timm.models.get_pretrained_cfg_value(args.model, 'classifier') or ''
        weight = state_dict.get(f'{classifier}.weight')
        if num_classes is None and weight is not None and weight.ndim == 2:
            num_classes = weight.shape[0]
        del checkpoint, state_dict
    kwargs = dict(args.model_kwargs)
    if num_classes is not None:
        kwargs['num_classes'] = num_classes
    if input_size[0] != 3:
        kwargs['in_chans'] = input_size[0]
    torch.manual_seed(0)
    try:
        model = timm.create_model(args.model, pretrained=args.pretrained, img_size=img_size, **kwargs)
    except PretrainedWeightsError as e:
        raise CheckpointError(e.with_hint(f'--checkpoint {e.filename} instead of --pretrained')) from None
    except TypeError as e:
        raise UsageError(f'--model-kwargs: {e}') from None
    if args.checkpoint:
        load_checkpoint(model, args.checkpoint, use_ema=args.use_ema)
    return model.eval()


def relative_error(reference, output) -> float:
    """max |output - reference| / max |reference| (tensors or arrays), in float64."""
    reference = torch.as_tensor(reference, dtype=torch.float64)
    output = torch.as_tensor(output, dtype=torch.float64)
    return ((output - reference).abs().max() / reference.abs().max().clamp_min(1e-30)).item()

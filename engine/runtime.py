"""Device, distributed and mixed-precision setup shared by train.py and validate.py, and the input
size a script builds its model for."""
from contextlib import nullcontext

import timm
import torch
from timm import utils


def setup_device(args) -> torch.device:
    """Distributed init (torchrun, SLURM, MPI) and the device; timm's prefetcher streams to CUDA only."""
    device = utils.init_distributed_device(args)
    args.prefetcher = not args.no_prefetcher and device.type == 'cuda'
    return device


def default_img_size(model_name: str) -> int:
    """The input size of a model's pretrained config (224 for the zoo): what its filters are built
    for without --img-size / --input-size."""
    return timm.models.get_pretrained_cfg_value(model_name, 'input_size')[-1]


def model_img_size(args):
    """The input size the model's filters are built for: --input-size, --img-size or the default."""
    return args.input_size[1:] if args.input_size else (args.img_size or default_img_size(args.model))


def amp_autocast_for(args, device: torch.device):
    """(autocast context factory, dtype or None): fp16 on CUDA unless --amp-dtype bfloat16; bf16 on CPU."""
    if not args.amp:
        return nullcontext, None
    dtype = torch.bfloat16 if args.amp_dtype == 'bfloat16' or device.type == 'cpu' else torch.float16
    return (lambda: torch.autocast(device.type, dtype=dtype)), dtype

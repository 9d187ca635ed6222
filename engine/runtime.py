"""Device, distributed and mixed-precision setup shared by train.py and validate.py."""
from contextlib import nullcontext

import torch
from timm import utils


def setup_device(args) -> torch.device:
    """Distributed init (torchrun, SLURM, MPI) and the device; timm's prefetcher streams to CUDA only."""
    device = utils.init_distributed_device(args)
    args.prefetcher = not args.no_prefetcher and device.type == 'cuda'
    return device


def model_img_size(args):
    """The input size the model's filters are built for: --input-size, --img-size or 224."""
    return args.input_size[1:] if args.input_size else (args.img_size or 224)


def amp_autocast_for(args, device: torch.device):
    """(autocast context factory, dtype or None): fp16 on CUDA unless --amp-dtype bfloat16; bf16 on CPU."""
    if not args.amp:
        return nullcontext, None
    dtype = torch.bfloat16 if args.amp_dtype == 'bfloat16' or device.type == 'cpu' else torch.float16
    return (lambda: torch.autocast(device.type, dtype=dtype)), dtype

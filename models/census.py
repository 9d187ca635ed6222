"""What a step costs a GPU, counted on any machine: the ATen ops it dispatches and the bytes they move.

On a GPU a step of a small batch is host-bound: each op dispatched costs the host a few
microseconds whatever its size, so their count is the cost. At a large batch the kernels are
memory-bound: the bytes they read and write are the cost. Both are properties of the op sequence,
not of the device, and a dispatch mode sees that sequence on the CPU too (after autograd and
autocast have added theirs: what would reach CUDA's kernels).

Counted per op: `ops`, every op dispatched; `kernels`, those that launch work (not views,
reshapes of metadata or allocations); `bytes`, for each kernel the bytes of its tensor inputs and
outputs (a tensor's elements, at most its storage: an expanded weight is read once).
"""
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional

import timm
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

__all__ = ['Census', 'DispatchCensus', 'count_step']

aten = torch.ops.aten
# Ops that only create a tensor or change its metadata: dispatched (host time), no kernel.
_NO_KERNEL = {
    aten.empty.memory_format, aten.empty_strided.default, aten.empty_like.default, aten.new_empty.default,
    aten.new_empty_strided.default, aten._unsafe_view.default, aten.detach.default, aten.lift_fresh.default,
    aten.set_.source_Storage_storage_offset, aten.resize_.default,
}


@dataclass
class Census:
    ops: int = 0
    kernels: int = 0
    bytes: int = 0
    by_op: Counter = field(default_factory=Counter)

    def as_dict(self) -> Dict[str, int]:
        return dict(ops=self.ops, kernels=self.kernels, bytes=self.bytes)


def _tensor_bytes(t: torch.Tensor) -> int:
    if t.device.type == 'meta':
        return 0
    return min(t.numel() * t.element_size(), t.untyped_storage().nbytes())


def _launches_kernel(func) -> bool:
    return not (func.is_view or func in _NO_KERNEL or func.overloadpacket in (aten.view_as_real, aten.view_as_complex))


class DispatchCensus(TorchDispatchMode):
    """Counts the ATen ops dispatched inside the block (forward, autograd's backward, optimizer)."""

    def __init__(self):
        super().__init__()
        self.census = Census()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        census = self.census
        census.ops += 1
        census.by_op[func.overloadpacket.__name__] += 1
        if _launches_kernel(func):
            census.kernels += 1
            tensors = [t for t in tree_flatten((args, kwargs, out))[0] if isinstance(t, torch.Tensor)]
            census.bytes += sum(_tensor_bytes(t) for t in tensors)
        return out


def count_step(model_name: str, train: bool, batch: int = 2, img_size: int = 224,
               autocast: Optional[torch.dtype] = torch.bfloat16, device_type: str = 'cuda',
               model_kwargs: Optional[dict] = None) -> Census:
    """The census of one training step (forward, mean loss in float32, backward, SGD step, zero_grad,
    as benchmark.py times it) or one inference forward of `model_name` on CPU tensors, with the
    model's code taking the path it takes on `device_type` (`models.layers.device_path`). Counted
    on the second step: the first builds caches (DFT matrices, autocast's weight casts are per step)."""
    from .layers import device_path

    torch.manual_seed(0)
    model = timm.create_model(model_name, **(model_kwargs or {})).train(train)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4) if train else None
    x = torch.randn(batch, 3, img_size, img_size)

    def step():
        with torch.autocast('cpu', dtype=autocast or torch.bfloat16, enabled=autocast is not None):
            if train:
                model(x).float().mean().backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            else:
                with torch.inference_mode():
                    model(x)

    with device_path(device_type):
        step()
        census = DispatchCensus()
        with census:
            step()
    return census.census


def compare(model_names, baseline: str = 'convformer_s18', run: Callable[..., Census] = count_step, **kwargs):
    """{name: (census, ratios to the baseline's ops, kernels and bytes)} for the baseline and each model."""
    base = run(baseline, **kwargs)
    out = {baseline: (base, {k: 1.0 for k in ('ops', 'kernels', 'bytes')})}
    for name in model_names:
        c = run(name, **kwargs)
        out[name] = (c, {k: getattr(c, k) / max(1, getattr(base, k)) for k in ('ops', 'kernels', 'bytes')})
    return out

"""StarReLU (s * relu(x)**2 + b, MetaFormer's activation) that keeps only its input for backward."""
import torch
import torch.nn.functional as F
from timm.models import metaformer, register_notrace_module
from torch import Tensor

__all__ = ['StarReLU']


@torch.jit.unused
def _square_scale_shift_(y: Tensor, scale: Tensor, bias: Tensor) -> Tensor:
    """scale * y**2 + bias, written into y."""
    if y.device.type == 'cpu' and not torch.compiler.is_compiling():
        # one pass over the largest activations instead of three (the scale as a Python number:
        # reading it is free on the CPU, a wait for the device on a GPU)
        return torch.addcmul(bias, y, y, value=scale.item(), out=y)
    return y.mul_(y).mul_(scale).add_(bias)


class _StarReLUFunction(torch.autograd.Function):
    """s * relu(x)**2 + b saving only x for backward (autograd's formula keeps relu(x) and
    relu(x)**2, two more tensors of x's size: the largest activations of the network), and
    computing the output in one buffer."""

    @staticmethod
    def forward(ctx, x: Tensor, scale: Tensor, bias: Tensor) -> Tensor:
        ctx.save_for_backward(x, scale)
        return _square_scale_shift_(F.relu(x), scale, bias)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, scale = ctx.saved_tensors
        grad_x = grad_scale = grad_bias = None
        relu_x = F.relu(x)
        if ctx.needs_input_grad[2]:
            grad_bias = grad.sum().view(1)
        grad_relu = relu_x.mul_(grad) if not ctx.needs_input_grad[1] else grad * relu_x  # grad * relu(x)
        if ctx.needs_input_grad[1]:
            # (in at least float32: CPU's half-precision dot is a scalar loop, 10x slower than
            # casting both operands, and a sum over every activation needs the mantissa)
            acc = torch.promote_types(x.dtype, torch.float32)
            grad_scale = torch.dot(grad_relu.flatten().to(acc), relu_x.flatten().to(acc)).view(1)
        if ctx.needs_input_grad[0]:
            grad_x = grad_relu.mul_(2 * scale)
        return grad_x, grad_scale, grad_bias


@register_notrace_module  # FX leaf: branches on dtypes
class StarReLU(metaformer.StarReLU):
    """s * relu(x)**2 + b (timm's, same parameters and outputs), keeping only its input for
    backward and writing one buffer; with `inplace`, without autograd, it writes into its input."""

    def forward(self, x: Tensor) -> Tensor:
        if torch.jit.is_scripting():
            return self.scale * F.relu(x) ** 2 + self.bias
        # Under autocast x is half precision and the parameters float32: compute in x's dtype, as
        # the linear layer before did (timm's promotes to a float32 output, which the next layer
        # casts back: two more passes over the largest activations).
        scale, bias = self.scale.to(x.dtype), self.bias.to(x.dtype)
        if self.inplace and not torch.is_grad_enabled():
            return _square_scale_shift_(x.relu_(), scale, bias)
        return _StarReLUFunction.apply(x, scale, bias)

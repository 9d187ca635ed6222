"""torch.compile smoke test (inductor, CPU): same outputs and gradients as eager."""
import torch

from models import DFFormer


def test_compile_matches_eager():
    torch.manual_seed(0)
    model = DFFormer(depths=(1, 1, 1, 1), dims=(16, 32, 48, 64), num_classes=10, img_size=64,
                     token_mixers=('sepconv', 'dynamic_filter', 'global_filter', 'dynamic_filter'))
    x = torch.randn(2, 3, 64, 64)
    compiled = torch.compile(model, dynamic=False)
    with torch.no_grad():
        model.eval()
        assert torch.allclose(compiled(x), model(x), rtol=1e-4, atol=1e-5)
    model.train()
    compiled(x).square().mean().backward()
    compiled_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model(x).square().mean().backward()
    for p, g in zip(model.parameters(), compiled_grads):
        assert torch.allclose(p.grad, g, rtol=1e-3, atol=1e-6)

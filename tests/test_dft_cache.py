"""The DFT matrices cached by a first call under inference_mode serve a later training step."""
import timm
import torch

import models  # noqa: F401  (registers the models)
from models.layers import dft


def test_matrices_cached_under_inference_mode_serve_training(monkeypatch):
    monkeypatch.setattr(dft, '_MATRIX_CACHE', {})
    model = timm.create_model('dfformer_s18_afno', depths=(1, 1, 1, 1), dims=(8, 16, 24, 32), num_classes=3)
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        model.eval()(x)
    assert dft._MATRIX_CACHE  # (the 2x2 and 4x4 maps go through the cached matrices)
    model.train()(x).mean().backward()
    assert all(p.grad is not None for p in model.parameters())

import importlib.util
import os

import torch

import models

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, 'tests', 'fixtures')

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def load_script(relpath: str):
    """A script of the repo (train.py, tools/flops.py, ...) as a module, to call its main()."""
    name = os.path.splitext(relpath.replace('/', '_'))[0]
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, relpath))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_fixture(name: str) -> dict:
    return torch.load(os.path.join(FIXTURES, f'{name}.pt'), weights_only=True)


def build_from_spec(spec: dict):
    """Our model for a fixture's tiny architecture spec (see tests/fixtures/README.md)."""
    kwargs = dict(
        depths=spec['depths'], dims=spec['dims'], token_mixers=spec['token_mixers'],
        mixer_kwargs=spec['mixer_kwargs'], act_layer=spec['activation'],
        img_size=tuple(spec['filters_built_for_input']),
    )
    if spec['dense_features']:
        return models.DFFormerDense(stage0_output_norm=spec['stage0_output_norm'], **kwargs)
    return models.DFFormer(num_classes=spec['num_classes'], **kwargs)

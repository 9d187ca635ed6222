"""ONNX export (onnx_export.py) and its check in ONNX Runtime (tools/onnx_validate.py).

Every zoo architecture is exported in a tiny variant in-process; the command lines run for
real through their main(argv): a tiny model with --dynamic-size checked at other sizes (odd,
even, non-square), dfformer_s18 at full size, and the one-line errors of bad input.
"""
import os
import re
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime
import pytest
import timm
import torch
from conftest import ROOT, load_script
from PIL import Image

import models
from engine.cli import run_cli

onnx_export = load_script('onnx_export.py')
onnx_validate = load_script('tools/onnx_validate.py')

TINY = dict(depths=(1, 1, 1, 1), dims=(16, 32, 48, 64))
TINY_ARGS = ['--model-kwargs', 'depths=(1,1,1,1)', 'dims=(16,32,48,64)']
# Ops a spectral mixer must not leave in the graph: the FFT / complex formulation.
SPECTRAL_OPS = {'DFT', 'STFT'}


def _op_types(path):
    graph = onnx.load(path).graph
    ops = {n.op_type for n in graph.node}
    for function in onnx.load(path).functions:
        ops |= {n.op_type for n in function.node}
    return ops


def _ort(path, x):
    session = onnxruntime.InferenceSession(path, providers=['CPUExecutionProvider'])
    return session.run(None, {'input0': x.numpy()})[0]


@pytest.mark.parametrize('name', sorted(models.MODEL_ARCHS))
def test_every_arch_exports_tiny(name, tmp_path):
    """Static export at 64 px: ONNX Runtime agrees to 1e-4 of the output scale, for every batch
    size, and the spectral mixers are MatMuls (no DFT node, no complex tensor)."""
    torch.manual_seed(0)
    model = timm.create_model(name, img_size=64, num_classes=10, **TINY).eval()
    path = str(tmp_path / f'{name}.onnx')
    onnx_export.export_onnx(model, path, (3, 64, 64), batch_size=2)
    assert not os.path.exists(path + '.tmp')
    ops = _op_types(path)
    assert not ops & SPECTRAL_OPS, ops
    assert 'MatMul' in ops
    for batch in (1, 3):
        x = torch.randn(batch, 3, 64, 64)
        with torch.no_grad():
            reference = model(x)
        assert onnx_export.relative_error(reference, _ort(path, x)) <= 1e-4


def _validate(capsys, *argv):
    """Run tools/onnx_validate.py; returns its relative error (it exits 1 above --tol)."""
    onnx_validate.main(list(argv))
    line = capsys.readouterr().out.strip().splitlines()[-1]
    return float(re.search(r'max abs error / max \|output\| (\S+),', line).group(1))


@pytest.mark.parametrize('name', ['dfformer_s18', 'dfformer_s18_afno'])
def test_cli_dynamic_size(name, tmp_path, capsys):
    """--dynamic-size: one graph for every size, odd, even and non-square, including the one the
    filters are built for (their resize is in the graph)."""
    # Weights whose spectral part matters: at their initial scale (0.02) the mixers' outputs are
    # too small next to the residual for a wrong spectral transform to show in the logits.
    torch.manual_seed(0)
    model = timm.create_model(name, img_size=64, **TINY)
    state_dict = {k: v * 50 if k.endswith(('complex_weights', '.w1', '.w2', '.b1', '.b2')) else v
                  for k, v in model.state_dict().items()}
    checkpoint = str(tmp_path / 'tiny.pth')
    torch.save(state_dict, checkpoint)
    weights = [*TINY_ARGS, '--checkpoint', checkpoint]
    path = str(tmp_path / 'tiny.onnx')
    onnx_export.main([path, '--model', name, *weights, '--img-size', '64', '--dynamic-size', '--check-forward'])
    assert 'check-forward' in capsys.readouterr().out
    ops = _op_types(path)
    assert not ops & SPECTRAL_OPS, ops
    assert name.endswith('_afno') or 'Resize' in ops  # (the filters' resize; AFNO has none)
    for size in (['--img-size', '64'], ['--img-size', '224'], ['--input-size', '3', '160', '96'],
                 ['--input-size', '3', '33', '47'], ['--input-size', '3', '100', '36']):
        error = _validate(capsys, path, '--model', name, *weights, '--model-img-size', '64', '64', *size,
                          '--batch-size', '3')
        assert error <= 1e-4, (size, error)


def test_cli_full_size_dfformer_s18(tmp_path, capsys):
    """dfformer_s18 at its size, 224 px, with weights from a checkpoint (loaded by both scripts)."""
    checkpoint = str(tmp_path / 'dfformer_s18.pth')
    torch.manual_seed(1)
    torch.save(timm.create_model('dfformer_s18', num_classes=10).state_dict(), checkpoint)
    path = str(tmp_path / 'dfformer_s18.onnx')
    onnx_export.main([path, '--model', 'dfformer_s18', '--checkpoint', checkpoint, '--img-size', '224'])
    assert not _op_types(path) & SPECTRAL_OPS
    error = _validate(capsys, path, '--model', 'dfformer_s18', '--checkpoint', checkpoint, '--img-size', '224',
                      '--batch-size', '2')
    assert error <= 1e-4
    # images through timm's eval transform of the model's config
    images = tmp_path / 'images' / 'class_a'
    images.mkdir(parents=True)
    for i, size in enumerate(((300, 200), (180, 240), (224, 224))):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (*size, 3), dtype=np.uint8)).save(images / f'{i}.png')
    error = _validate(capsys, path, '--model', 'dfformer_s18', '--checkpoint', checkpoint, '--img-size', '224',
                      '--data', str(tmp_path / 'images'), '--batch-size', '2')
    assert error <= 1e-4
    # the static graph refuses another size, in one line
    with pytest.raises(SystemExit) as e:
        run_cli(lambda: onnx_validate.main([path, '--model', 'dfformer_s18', '--checkpoint', checkpoint,
                                            '--img-size', '192']))
    assert e.value.code == 2 and '--dynamic-size' in capsys.readouterr().err


@pytest.mark.parametrize('argv, message', [
    (['OUT', '--model', 'resnet_nope'], 'unknown model'),
    (['OUT', '--opset', '11'], '--opset 11'),
    (['OUT', '--img-size', '2'], '--img-size 2'),
    (['OUT', '--checkpoint', 'missing.pth'], 'missing.pth: no such file'),
    (['{tmp}'], 'is a folder'),
    (['{tmp}/no/such/folder/m.onnx'], 'no folder'),
])
def test_export_errors_one_line(argv, message, tmp_path, capsys):
    argv = [a.replace('OUT', str(tmp_path / 'm.onnx')).replace('{tmp}', str(tmp_path)) for a in argv]
    with pytest.raises(SystemExit) as e:
        run_cli(lambda: onnx_export.main(argv))
    err = capsys.readouterr().err
    assert e.value.code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert os.listdir(tmp_path) == []


def test_validate_errors(tmp_path, capsys):
    bad = tmp_path / 'bad.onnx'
    bad.write_bytes(b'not a model')
    for argv, message in ([[str(tmp_path / 'none.onnx')], 'no such file'], [[str(bad)], 'not an ONNX model']):
        with pytest.raises(SystemExit) as e:
            run_cli(lambda argv=argv: onnx_validate.main(argv))
        err = capsys.readouterr().err
        assert e.value.code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_size_and_classes_come_from_the_checkpoint(tmp_path):
    """A train.py checkpoint trained at 48 px with 7 classes, exported and checked without
    --img-size / --num-classes (the real command lines): both scripts take them from the
    checkpoint, as inference.py does, not 224 px and 1000 classes."""
    torch.manual_seed(0)
    model = timm.create_model('dfformer_s18', img_size=48, num_classes=7, **TINY)
    checkpoint = tmp_path / 'last.pth.tar'
    torch.save({'epoch': 0, 'state_dict': model.state_dict(),
                'args': {'model': 'dfformer_s18', 'img_size': 48, 'input_size': None}}, checkpoint)
    path = tmp_path / 'tiny.onnx'
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONWARNINGS': 'ignore'}
    for script, first in (('onnx_export.py', path), ('tools/onnx_validate.py', path)):
        result = subprocess.run([sys.executable, os.path.join(ROOT, script), str(first), *TINY_ARGS, '--checkpoint',
                                 str(checkpoint)], env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
    graph = onnx.load(str(path)).graph
    dims = [[d.dim_value or d.dim_param for d in v.type.tensor_type.shape.dim] for v in (graph.input[0],
                                                                                       graph.output[0])]
    assert dims == [['batch', 3, 48, 48], ['batch', 7]]
    assert 'input (3, 48, 48)' in result.stdout and 'top-1 agreement 2/2' in result.stdout

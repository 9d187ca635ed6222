"""benchmark.py (sweep, CSV, plots), the MAC counter and the filter visualisation."""
import csv
import math

import numpy as np
import pytest
import torch
from conftest import load_script
from PIL import Image

from models.flops import count_macs
from models.layers import DynamicFilter

benchmark = load_script('benchmark.py')
visualize_filters = load_script('tools/visualize_filters.py')

# The performance goals (docs/performance.md): each measure of
# `benchmark.py --targets` as a ratio to convformer_s18, at every size and batch it measures.
GOALS = {
    'infer img/s': ('>=', 1.0),
    'train img/s': ('>=', 1.0),
    'saved activations MB': ('<=', 1.0),
    'train peak MB': ('<=', 1.05),
}


def missed_goals(rows, baseline='convformer_s18'):
    """The rows of a `--targets` report whose ratio misses its goal."""
    def met(r):
        op, limit = GOALS[r['metric']]
        return r['ratio'] >= limit if op == '>=' else r['ratio'] <= limit
    return [r for r in rows if r['model'] != baseline and not met(r)]


def test_sweep_writes_csv_and_plots(tmp_path):
    csv_path = tmp_path / 'sweep.csv'
    benchmark.main(['--sweep', '--models', 'dfformer_s18', '--baseline', 'convformer_s18', '--img-size', '32', '64',
                    '--csv', str(csv_path), '--plot-dir', str(tmp_path)])
    rows = list(csv.DictReader(open(csv_path)))
    models = {r['model'] for r in rows}
    assert models == {'dfformer_s18', 'convformer_s18', 'caformer_s18'}
    assert len(rows) == 3 * 2 * 2  # models x sizes x (infer, train)
    for r in rows:
        assert float(r['img_per_sec']) > 0 and float(r['peak_mem_mb']) >= 0
        if r['model'] == 'convformer_s18':
            assert float(r['speed_ratio']) == 1.0
    for name in ('throughput_vs_resolution.png', 'memory_vs_resolution.png'):
        assert Image.open(tmp_path / name).size[0] > 500


def test_benchmark_unknown_model_is_a_clear_error(capsys):
    with pytest.raises(SystemExit):
        benchmark.main(['--models', 'dfformer_s99'])
    assert "unknown model(s) ['dfformer_s99']" in capsys.readouterr().err


def test_mac_counter_matches_hand_count():
    torch.manual_seed(0)
    C, H, W, N = 8, 6, 10, 4
    M, h, w = 2 * C, H, W // 2 + 1
    mixer = DynamicFilter(C, num_filters=N, size=(H, W))
    n = H * W
    fft = lambda signals: 4 * signals * n / 2 * math.log2(n) / 2  # noqa: E731 (real-sided transform)
    expected = (
        C * (C // 4) + (C // 4) * N * M     # reweight MLP
        + H * W * C * M                     # pwconv1
        + fft(M)                            # rFFT2 of the M expanded channels
        + M * N * h * w * 2                 # routing x bases (real matmul)
        + 4 * M * h * w                     # complex product with the filter
        + C * M * h * w * 2                 # pwconv2 on the half spectrum
        + fft(C)                            # irFFT2 of the C output channels
    )
    macs, _ = count_macs(mixer, inputs=torch.randn(1, H, W, C))
    assert macs == pytest.approx(expected, abs=2)


def test_linear_and_conv_counts():
    assert count_macs(torch.nn.Linear(8, 16), inputs=torch.randn(1, 8))[0] == 128
    conv = torch.nn.Conv2d(3, 4, 3, padding=1)
    assert count_macs(conv, 5)[0] == 5 * 5 * 4 * 3 * 9


def test_visualisation_writes_png(tmp_path):
    image = tmp_path / 'img.png'
    pixels = np.zeros((90, 120, 3), np.uint8)
    pixels[20:70, 30:90] = (220, 120, 40)
    Image.fromarray(pixels).save(image)
    for name in ('dfformer_s18', 'gfformer_s18'):
        out = tmp_path / f'{name}.png'
        visualize_filters.main(['--model', name, '--image', str(image), '--img-size', '64', '--out', str(out)])
        assert Image.open(out).size[1] > 600  # a row per filtering stage


def test_targets_mode_prints_every_ratio(monkeypatch, capsys):
    """The --targets table, at tiny sizes: every measure of every model, ratios to the baseline; a
    goal for every measure, and the one that does not depend on the machine's load (activations
    saved for backward: bytes, not time) met in float32 even at this size."""
    every = [('infer', 32, 2), ('train', 32, 1), ('memory', 32, 1)]
    measures = {'float32': every, 'bf16-autocast': every, 'fp16-autocast': every[:1], 'bf16': every[:1],
                'fp16': every[:1]}
    monkeypatch.setattr(benchmark, 'TARGET_MEASURES', measures)
    rows = benchmark.main(['--targets', '--repeats', '1', '--precisions', *measures])
    out = capsys.readouterr().out
    assert 'threads' in out and 'torch' in out and benchmark.cpu_half_isa() in out
    assert all(f'## {p}' in out for p in measures)
    assert {(r['precision'], r['metric'], r['model']) for r in rows} == {
        (p, metric, model) for p in measures for metric in GOALS
        for model in ('convformer_s18', 'dfformer_s18', 'cdfformer_s18')
        if metric.split()[0] in {m for m, _, _ in measures[p]} or metric.endswith('MB') and len(measures[p]) == 3}
    for r in rows:
        assert r['value'] > 0 or r['metric'] == 'train peak MB'
        if r['model'] == 'convformer_s18':
            assert r['ratio'] == 1.0
    # (under autocast the cast weights count too, and at 32 px they outweigh the activations)
    assert not missed_goals([r for r in rows if r['metric'] == 'saved activations MB' and r['precision'] == 'float32'])


def test_star_relu_and_spectral_mixer_save_only_their_inputs():
    """The memory claims: StarReLU keeps only its input for backward (autograd's formula keeps
    relu(x) and relu(x)**2), the spectral mixer its pwconv1 output, its input and the routing."""
    from models.layers import StarReLU
    x = torch.randn(2, 7, 9, 16, requires_grad=True)
    assert benchmark.saved_activation_bytes(StarReLU(), x) == x.nbytes
    mixer = DynamicFilter(16, size=(7, 9))
    med = mixer.med_channels
    x_bytes, expanded = x.nbytes, 2 * 7 * 9 * med * 4
    routing = 2 * mixer.num_filters * med * 4
    saved = benchmark.saved_activation_bytes(mixer, x)
    # x (pwconv1 and the pooling), pwconv1's output (StarReLU), its activation (the spectral
    # mixer), the routing and the small tensors of the reweighting MLP; no spectrum-sized tensor.
    assert saved < x_bytes + 2 * expanded + routing + 8 * 1024


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_spectral_mixer_saves_only_its_inputs_under_autocast(dtype):
    """Under autocast the mixer goes through the same memory-saving Function (no complex spectrum
    kept by autograd), and what it keeps is in the autocast dtype."""
    x = torch.randn(2, 7, 9, 16, requires_grad=True)
    mixer = DynamicFilter(16, size=(7, 9))
    med = mixer.med_channels
    half_x, expanded = x.nbytes // 2, 2 * 7 * 9 * med * 2
    routing = 2 * mixer.num_filters * med * 4
    with torch.autocast('cpu', dtype=dtype):
        saved = benchmark.saved_activation_bytes(mixer, x)
        assert mixer(x).dtype == dtype
    # x cast for pwconv1, its output (StarReLU) and activation (the spectral mixer) in `dtype`, the
    # routing, and the weights cast for autocast (4 * med * 16 * 2 bytes at most).
    assert saved < half_x + 2 * expanded + routing + 4 * med * 16 * 2 + 8 * 1024

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


GPU_COLUMNS = ['precision', 'mode', 'compile', 'img_size', 'batch_size', 'model', 'img_per_sec', 'speed_ratio',
               'peak_mem_mb', 'mem_ratio', 'warmup_s', 'rounds', 'iters', 'error']


def test_gpu_preset_runs_tiny_on_cpu(tmp_path, monkeypatch, capsys):
    """`--gpu` at --gpu-scale tiny on the CPU: the whole preset path (GPU_ROWS without the compiled and
    the float16 rows), a CSV row per (precision, mode, compile, size, batch, model), ratios against
    convformer_s18 in the same row; a model that fails gets its one-line error and the others go on."""
    real_step = benchmark.Runner.step

    def step(self):
        if self.name == 'caformer_s18' and self.train and self.autocast_dtype is None:
            raise torch.OutOfMemoryError('CUDA out of memory. Tried to allocate 2 GiB\nsecond line')
        real_step(self)

    monkeypatch.setattr(benchmark.Runner, 'step', step)
    csv_path = tmp_path / 'out' / 'benchmark-gpu.csv'
    benchmark.main(['--gpu', '--device', 'cpu', '--gpu-scale', 'tiny', '--csv', str(csv_path)])
    out = capsys.readouterr().out
    rows = list(csv.DictReader(open(csv_path)))
    assert list(rows[0]) == GPU_COLUMNS
    expected = [r for r in benchmark.GPU_ROWS if not r.compile and 'fp16' not in r.precision]
    assert len(expected) == 5
    assert [(r['precision'], r['mode'], r['img_size'], r['model']) for r in rows] == [
        (r.precision, r.mode, str(benchmark.GPU_TINY_SIZES[r.img_size]), m) for r in expected for m in r.models]
    assert {r['batch_size'] for r in rows} == {'2'} and {r['compile'] for r in rows} == {'0'}
    for r in rows:
        if r['model'] == 'caformer_s18' and r['mode'] == 'train' and r['precision'] == 'float32':
            assert r['error'] == 'OutOfMemoryError: CUDA out of memory. Tried to allocate 2 GiB'
            assert r['img_per_sec'] == 'nan'
            continue
        assert r['error'] == '' and float(r['img_per_sec']) > 0 and float(r['peak_mem_mb']) >= 0
        assert float(r['warmup_s']) > 0 and float(r['speed_ratio']) > 0
        if r['model'] == 'convformer_s18':
            assert float(r['speed_ratio']) == 1.0
    table = (tmp_path / 'out' / 'benchmark-gpu.md').read_text()
    assert table.count('\n| ') == len(rows) + 1 and 'OutOfMemoryError' in table
    assert out.rstrip().endswith(table.rstrip()) and 'elapsed' in out


def test_gpu_preset_rows_and_budget(tmp_path, capsys):
    """The full-size rows (what --gpu measures on a GPU), --models / --precisions filters, and a
    --time-budget that is spent: every model is recorded as skipped, nothing built."""
    args = benchmark.parse_args(['--gpu', '--device', 'cpu', '--gpu-scale', 'tiny'])
    args.gpu_scale, args.precisions = 'full', list(benchmark.PRECISIONS)
    rows = benchmark.gpu_rows(args)
    assert rows == benchmark.GPU_ROWS and len(rows) == 13
    assert {(r.precision, r.mode, r.img_size, r.batch) for r in rows if r.compile} == {
        ('bf16-autocast', 'infer', 224, 256), ('bf16-autocast', 'train', 224, 128)}
    assert all(r.models[0] == 'convformer_s18' for r in rows)
    args.models, args.precisions = ['dfformer_s18', 'gfformer_s18'], ['float32']
    assert [r.models for r in benchmark.gpu_rows(args)] == [('convformer_s18', 'dfformer_s18', 'gfformer_s18')] * 2
    csv_path = tmp_path / 'b.csv'
    benchmark.main(['--gpu', '--device', 'cpu', '--gpu-scale', 'tiny', '--precisions', 'float32',
                    '--time-budget', '0.001', '--csv', str(csv_path)])
    rows = list(csv.DictReader(open(csv_path)))
    assert len(rows) == 8 and all(r['error'].startswith('skipped: ') for r in rows)
    with pytest.raises(SystemExit):
        benchmark.main(['--gpu', '--device', 'cpu'])
    assert '--gpu-scale tiny' in capsys.readouterr().err


def test_profile_writes_tables_on_cpu(tmp_path, capsys):
    benchmark.main(['--profile', 'dfformer_s18', '--device', 'cpu', '--gpu-scale', 'tiny',
                    '--profile-dir', str(tmp_path)])
    text = (tmp_path / 'profile-dfformer_s18.txt').read_text()
    assert '# step of dfformer_s18:' in text and 'top 25 ops by their own host (CPU) time' in text
    assert 'aten::' in text and 'wrote' in capsys.readouterr().out

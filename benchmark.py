#!/usr/bin/env python3
"""Throughput and peak memory of models, as ratios to a baseline measured in the same run.

    .venv/bin/python benchmark.py --models dfformer_s18 cdfformer_s18 --baseline convformer_s18
    .venv/bin/python benchmark.py --sweep --img-size 224 384 512 768 1024 --csv docs/sweep.csv --plot-dir docs
    .venv/bin/python benchmark.py --targets   # the measures of the performance targets, as ratios to convformer_s18
    .venv/bin/python benchmark.py --targets --precisions bf16-autocast   # one precision's table
    python3 benchmark.py --gpu --csv gpu_out/benchmark-gpu.csv   # the GPU preset (GPU_ROWS), about 6 min on an H200
    python3 benchmark.py --profile dfformer_s18 convformer_s18 --profile-dir gpu_out   # one bf16 training step
    .venv/bin/python benchmark.py --gpu --device cpu --gpu-scale tiny --csv /tmp/g.csv   # the preset's path, on CPU

--gpu measures GPU_MODELS against convformer_s18 in every row of GPU_ROWS (precision, mode, compile,
size, batch): the models of a row built in one process, warmed up, timed in interleaved rounds,
img/s from the median round, peak memory (torch.cuda.max_memory_allocated) and both as ratios to
convformer_s18 in the same row. A model that fails in a row (out of memory, a compile error) gets
its error in its CSV row and the run goes on; --time-budget skips what would not fit (also
recorded). The CSV is rewritten after every row, so a run cut short keeps what it measured; the
markdown table goes beside it (.md) and is printed last. tools/gpu_check.sh runs it.

--targets measures dfformer_s18 and cdfformer_s18 against convformer_s18 in every precision users
run (TARGET_MEASURES): float32, bf16 and fp16 autocast, and the whole model cast to bf16 / fp16;
throughput of inference and of a training step, the bytes of activations one training forward
saves for backward and the peak memory of forward + backward, each as a ratio to the baseline in
the same precision. The goals for those ratios are stated in docs/performance.md and kept in
tests/test_analysis.py, not here.

Each (model, size) is timed for inference (eval, no grad) and a training step (forward,
backward, SGD step). Models are measured round-robin, `--repeats` times, and the median
time per image is reported, so that a slow moment of the machine hits every model alike.
Peak memory: CUDA max allocated bytes; on CPU, the peak resident memory of the process
during the step above what it held before (Linux high-water mark, reset before each step).
"""
import argparse
import copy
import csv
import ctypes
import datetime
import gc
import logging
import os
import statistics
import subprocess
import sys
import time
from typing import Dict, List, NamedTuple, Optional, Sequence

import timm
import torch

import models  # registers the DFFormer family
from engine.cli import ArgumentParser, check_numbers

_logger = logging.getLogger('benchmark')

S18_MODELS = ['dfformer_s18', 'cdfformer_s18', 'gfformer_s18']
BASELINES = ['convformer_s18', 'caformer_s18']


def parse_args(argv=None):
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--models', nargs='+', default=None,
                   help='models to measure (default: dfformer_s18 cdfformer_s18; with --sweep the S18 family)')
    p.add_argument('--baseline', default='convformer_s18', help='ratios are against this model')
    p.add_argument('--sweep', action='store_true',
                   help='resolution sweep of the S18 models against convformer_s18 and caformer_s18')
    p.add_argument('--targets', action='store_true',
                   help='the measures of the performance targets: throughput and memory ratios against '
                        'convformer_s18')
    p.add_argument('--img-size', type=int, nargs='+', default=None, help='input sizes (default 224)')
    p.add_argument('--batch-size', type=int, default=None, help='inference batch size (8; sweep: 1)')
    p.add_argument('--train-batch-size', type=int, default=None, help='training-step batch size (4; sweep: 1)')
    p.add_argument('--repeats', type=int, default=None, help='round-robin rounds, median reported (5; sweep: 2)')
    p.add_argument('--iters', type=int, default=None, help='timed iterations per round (2; sweep: 1)')
    p.add_argument('--no-train', action='store_true', help='inference only')
    p.add_argument('--compile', action='store_true', help='torch.compile every model')
    p.add_argument('--channels-last', action='store_true')
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--amp', default='', choices=['', 'float16', 'bfloat16'], help='autocast dtype')
    p.add_argument('--precisions', nargs='+', default=None, choices=list(PRECISIONS),
                   help='--targets: the precisions to measure (default: all on CUDA; those without float16 on CPU)')
    p.add_argument('--threads', type=int, default=0, help='CPU threads (0: torch default)')
    p.add_argument('--csv', default='', help='write the results to this CSV file')
    p.add_argument('--plot-dir', default='', help='write throughput and memory plots (PNG) here')
    p.add_argument('--gpu', action='store_true',
                   help='the GPU preset: every row of GPU_ROWS (--models and --precisions filter them); '
                        'CSV default benchmark-gpu-<date>.csv')
    p.add_argument('--gpu-scale', default='full', choices=['full', 'tiny'],
                   help='--gpu / --profile: tiny runs the same path at batch 2, 64-96 px, one round, no '
                        'compiled rows (a check on CPU: --device cpu)')
    p.add_argument('--time-budget', type=float, default=None,
                   help='--gpu: seconds; a model whose row would end past it is skipped (recorded in the CSV); '
                        '0: no limit (default 330, tiny: 0)')
    p.add_argument('--profile', nargs='+', default=None, metavar='MODEL',
                   help='torch.profiler tables of one bf16-autocast training step (batch 128, 224 px) of each '
                        'model, written to --profile-dir as profile-MODEL.txt')
    p.add_argument('--profile-dir', default='.', help='--profile: folder of the tables')
    args = p.parse_args(argv)
    check_numbers(p, args)
    if args.time_budget is not None and not (0 <= args.time_budget < float('inf')):
        p.error(f'--time-budget {args.time_budget}: must be a finite number >= 0 (0: no limit)')
    if args.gpu or args.profile:
        return _parse_gpu_args(p, args)
    if args.sweep:
        args.models = args.models or S18_MODELS
        args.img_size = args.img_size or [224, 384, 512, 768, 1024]
        extra = [b for b in BASELINES if b not in args.models]
        args.models = extra + [m for m in args.models if m not in extra]
        args.baseline = args.baseline if args.baseline in args.models else BASELINES[0]
    if args.targets:
        args.models = args.models or ['dfformer_s18', 'cdfformer_s18']
        args.repeats = args.repeats or 7
        # (float16 on a CPU runs, but without native kernels: minutes a step, so only on request)
        args.precisions = args.precisions or [
            p for p in PRECISIONS if args.device == 'cuda' or torch.float16 not in PRECISIONS[p]]
    for name, single, sweep in (('batch_size', 8, 1), ('train_batch_size', 4, 1), ('repeats', 5, 2), ('iters', 2, 1)):
        if getattr(args, name) is None:
            setattr(args, name, sweep if args.sweep else single)
    args.models = args.models or ['dfformer_s18', 'cdfformer_s18']
    if args.baseline and args.baseline not in args.models:
        args.models = [args.baseline] + args.models
    args.img_size = args.img_size or [224]
    unknown = [m for m in args.models if not timm.is_model(m)]
    if unknown:
        p.error(f'unknown model(s) {unknown}; see timm.list_models() (ours: {sorted(models.MODEL_ARCHS)})')
    return args


def _parse_gpu_args(p: argparse.ArgumentParser, args):
    """The options of --gpu and --profile (their own defaults; the general ones below do not apply)."""
    if args.gpu and (args.sweep or args.targets) or args.profile and (args.gpu or args.sweep or args.targets):
        p.error('--gpu, --profile, --sweep and --targets are separate presets: give one')
    if args.device.startswith('cuda') and not torch.cuda.is_available():
        p.error(f'--device {args.device}: no CUDA device here (on CPU: --device cpu --gpu-scale tiny)')
    if not args.device.startswith('cuda') and args.gpu_scale == 'full':
        p.error(f'--device {args.device} at --gpu-scale full: the GPU sizes (batch 128-256) take hours on a '
                'CPU; add --gpu-scale tiny to run the same path at a small size')
    names = (args.models or []) + (args.profile or [])
    unknown = [m for m in names if not timm.is_model(m)]
    if unknown:
        p.error(f'unknown model(s) {unknown}; see timm.list_models() (ours: {sorted(models.MODEL_ARCHS)})')
    args.precisions = args.precisions or [
        p for p in PRECISIONS if args.device.startswith('cuda') or torch.float16 not in PRECISIONS[p]]
    if args.time_budget is None:
        args.time_budget = 330.0 if args.gpu_scale == 'full' else 0.0
    if args.gpu and not args.csv:
        args.csv = f'benchmark-gpu-{datetime.date.today().isoformat()}.csv'
    return args


def _rss_reset() -> Optional[int]:
    """Hand freed heap memory back to the OS (else the step reuses it unseen), reset the
    resident high-water mark and return the current RSS in bytes (None off Linux/glibc)."""
    gc.collect()
    try:
        ctypes.CDLL('libc.so.6').malloc_trim(0)
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return _proc_status('VmRSS')
    except (OSError, AttributeError):
        return None


def _proc_status(key: str) -> int:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(key + ':'):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


# Precision -> (autocast dtype, dtype the whole model and its input are cast to).
PRECISIONS = {
    'float32': (None, torch.float32),
    'bf16-autocast': (torch.bfloat16, torch.float32),
    'fp16-autocast': (torch.float16, torch.float32),
    'bf16': (None, torch.bfloat16),
    'fp16': (None, torch.float16),
}
_AMP_PRECISION = {'': 'float32', 'bfloat16': 'bf16-autocast', 'float16': 'fp16-autocast'}


class Runner:
    """One (model, size, mode) measurement: builds inputs, times steps, tracks peak memory."""

    def __init__(self, args, name: str, img_size: int, train: bool, precision: str = ''):
        self.args, self.name, self.img_size, self.train = args, name, img_size, train
        self.device = torch.device(args.device)
        self.batch = args.train_batch_size if train else args.batch_size
        self.autocast_dtype, dtype = PRECISIONS[precision or _AMP_PRECISION[args.amp]]
        model = timm.create_model(name).to(self.device, dtype)
        if args.channels_last:
            model = model.to(memory_format=torch.channels_last)
        model.train(train)
        self.model = torch.compile(model) if args.compile else model
        self.optimizer = torch.optim.SGD(model.parameters(), lr=1e-4) if train else None
        self.input = torch.randn(self.batch, 3, img_size, img_size, device=self.device, dtype=dtype)
        self.times: List[float] = []
        self.peak_bytes = 0

    def _autocast(self):
        dtype = self.autocast_dtype
        return torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None)

    def step(self):
        with self._autocast():
            if self.train:
                loss = self.model(self.input).float().mean()
                loss.backward()
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
            else:
                with torch.inference_mode():
                    self.model(self.input)
        if self.device.type == 'cuda':
            torch.cuda.synchronize()

    def measure(self, iters: int):
        if self.device.type == 'cuda':
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        else:
            base = _rss_reset()
        start = time.perf_counter()
        for _ in range(iters):
            self.step()
        self.times.append((time.perf_counter() - start) / (iters * self.batch))
        if self.device.type == 'cuda':
            peak = torch.cuda.max_memory_allocated() - base
        else:
            peak = _proc_status('VmHWM') - base if base is not None else 0
        self.peak_bytes = max(self.peak_bytes, peak)

    def result(self) -> Dict:
        sec_per_img = statistics.median(self.times)
        return dict(model=self.name, img_size=self.img_size, mode='train' if self.train else 'infer',
                    batch_size=self.batch, img_per_sec=1.0 / sec_per_img, peak_mem_mb=self.peak_bytes / 2 ** 20)


def saved_activation_bytes(model: torch.nn.Module, x: torch.Tensor) -> int:
    """Bytes of the tensors one training forward keeps for backward (each storage counted once;
    parameters excluded)."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            storages[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x)
    return sum(storages.values())


# The measures of --targets per precision: (measure, image size, batch); 'memory' is the activations
# saved for backward and the peak memory of a training step.
_MEMORY = [('memory', 224, 2), ('memory', 512, 1), ('memory', 1024, 1)]
TARGET_MEASURES = {
    'float32': [('infer', 224, 8), ('train', 224, 4), ('infer', 1024, 1), ('train', 1024, 1)] + _MEMORY,
    'bf16-autocast': [('infer', 224, 16), ('infer', 512, 2), ('train', 224, 8), ('train', 512, 1)] + _MEMORY,
    'fp16-autocast': [('infer', 224, 16), ('train', 224, 8)],
    'bf16': [('infer', 224, 16)],
    'fp16': [('infer', 224, 16)],
}


def _measure_speed(args, precision: str, mode: str, size: int, batch: int) -> List[Dict]:
    train = mode == 'train'
    setattr(args, 'train_batch_size' if train else 'batch_size', batch)
    runners = [Runner(args, name, size, train, precision) for name in args.models]
    for runner in runners:
        runner.step()
        runner.step()
    for _ in range(args.repeats):
        for runner in runners:
            runner.measure(1)
    return [dict(precision=precision, metric=f'{mode} img/s', img_size=size, batch_size=batch, model=r.name,
                 value=1.0 / statistics.median(r.times)) for r in runners]


def _measure_memory(args, precision: str, size: int, batch: int) -> List[Dict]:
    args.train_batch_size = batch
    rows = []
    for name in args.models:
        runner = Runner(args, name, size, True, precision)
        runner.step()
        runner.peak_bytes = 0
        for _ in range(2):
            runner.measure(1)
        with runner._autocast():
            saved = saved_activation_bytes(runner.model, runner.input)
        for metric, value in (('saved activations MB', saved), ('train peak MB', runner.peak_bytes)):
            rows.append(dict(precision=precision, metric=metric, img_size=size, batch_size=batch, model=name,
                             value=value / 2 ** 20))
        del runner
        gc.collect()
    return rows


def run_targets(args) -> List[Dict]:
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for precision in args.precisions:
        for mode, size, batch in TARGET_MEASURES[precision]:
            if mode == 'memory':
                rows += _measure_memory(args, precision, size, batch)
            else:
                rows += _measure_speed(args, precision, mode, size, batch)
            gc.collect()
    base = {(r['precision'], r['metric'], r['img_size']): r['value'] for r in rows if r['model'] == args.baseline}
    for r in rows:
        r['ratio'] = r['value'] / base[(r['precision'], r['metric'], r['img_size'])]
    return rows


def print_targets(rows: List[Dict], baseline: str, file=None):
    file = file or sys.stdout
    for precision in dict.fromkeys(r['precision'] for r in rows):
        print(f'\n## {precision}', file=file)
        print(f'{"metric":<22} {"size":>5} {"batch":>5} {"model":<16} {"value":>9} {"/" + baseline:>16}', file=file)
        for r in rows:
            if r['precision'] == precision:
                print(f'{r["metric"]:<22} {r["img_size"]:>5} {r["batch_size"]:>5} {r["model"]:<16} '
                      f'{r["value"]:>9.2f} {r["ratio"]:>16.3f}', file=file)


def _is_oom(e: BaseException) -> bool:
    return isinstance(e, torch.OutOfMemoryError) or 'out of memory' in str(e).lower() or isinstance(e, MemoryError)


def run(args) -> List[Dict]:
    if args.threads:
        torch.set_num_threads(args.threads)
    results = []
    modes = [False] if args.no_train else [False, True]
    try:
        from tqdm import tqdm
    except ImportError:  # progress is optional
        tqdm = None
    jobs = [(size, train) for size in args.img_size for train in modes]
    progress = tqdm(total=len(jobs) * len(args.models), desc='benchmark', file=sys.stderr) if tqdm else None
    for size, train in jobs:
        runners = []
        for name in args.models:
            try:
                runner = Runner(args, name, size, train)
                runner.step()  # warm-up (and compile)
                runner.step()
                runners.append(runner)
            except (RuntimeError, MemoryError) as e:
                if not _is_oom(e):
                    raise
                _logger.warning(f'{name} at {size}px ({"train" if train else "infer"}): out of memory, skipped')
                results.append(dict(model=name, img_size=size, mode='train' if train else 'infer',
                                    batch_size=args.train_batch_size if train else args.batch_size,
                                    img_per_sec=float('nan'), peak_mem_mb=float('nan')))
            gc.collect()
            if progress:
                progress.update()
        for _ in range(args.repeats):
            for runner in runners:
                runner.measure(args.iters)
        results += [r.result() for r in runners]
        del runners
        gc.collect()
        if args.device == 'cuda':
            torch.cuda.empty_cache()
    if progress:
        progress.close()
    _add_ratios(results, args.baseline)
    return results


def _add_ratios(results: List[Dict], baseline: str, key: Sequence[str] = ('img_size', 'mode')):
    """speed_ratio and mem_ratio of every result against the baseline's result of the same `key`."""
    base = {tuple(r[k] for k in key): r for r in results if r['model'] == baseline}
    for r in results:
        b = base.get(tuple(r[k] for k in key))
        r['speed_ratio'] = r['img_per_sec'] / b['img_per_sec'] if b else float('nan')
        r['mem_ratio'] = r['peak_mem_mb'] / b['peak_mem_mb'] if b and b['peak_mem_mb'] else float('nan')


def print_table(results: List[Dict], baseline: str, file=sys.stdout):
    print(f'{"model":<18} {"size":>5} {"mode":<6} {"batch":>5} {"img/s":>9} {"peak MB":>9} '
          f'{"speed/" + baseline:>24} {"mem/" + baseline:>22}', file=file)
    for r in results:
        print(f'{r["model"]:<18} {r["img_size"]:>5} {r["mode"]:<6} {r["batch_size"]:>5} {r["img_per_sec"]:>9.2f} '
              f'{r["peak_mem_mb"]:>9.0f} {r["speed_ratio"]:>24.3f} {r["mem_ratio"]:>22.3f}', file=file)


class GpuRow(NamedTuple):
    """One row of the --gpu preset: every model of `models` measured in `precision` (PRECISIONS),
    interleaved: `warmup` steps each, then `rounds` rounds of `iters` timed steps. `est_s`: about
    how many seconds one model of the row takes on an H200, build, warm-up (compile) and timing,
    for --time-budget."""
    precision: str
    mode: str  # 'train' (forward, backward, SGD step) or 'infer' (inference_mode)
    img_size: int
    batch: int
    compile: bool = False  # torch.compile (inductor, default mode)
    warmup: int = 2
    rounds: int = 3
    iters: int = 5
    est_s: float = 5.0
    models: Sequence[str] = ('convformer_s18', 'caformer_s18', 'dfformer_s18', 'cdfformer_s18')


GPU_MODELS = GpuRow._field_defaults['models']
GPU_COMPILE_MODELS = ('convformer_s18', 'dfformer_s18', 'cdfformer_s18')
# The rows of `benchmark.py --gpu`, in the order they run (the eager rows first: a --time-budget cut
# falls on the compiled ones). About 2 minutes of eager rows and 3-4 of compiled ones on an H200.
GPU_ROWS = [
    GpuRow('fp16-autocast', 'train', 224, 128),
    GpuRow('fp16-autocast', 'infer', 224, 256),
    GpuRow('bf16-autocast', 'train', 224, 128),
    GpuRow('bf16-autocast', 'infer', 224, 256),
    GpuRow('fp16-autocast', 'train', 224, 8, iters=10),
    GpuRow('fp16-autocast', 'train', 512, 8, iters=10),
    GpuRow('fp16-autocast', 'infer', 224, 16, iters=10),
    GpuRow('fp16', 'infer', 224, 256),
    GpuRow('bf16', 'infer', 224, 256),
    GpuRow('float32', 'train', 224, 128, iters=3),
    GpuRow('float32', 'infer', 224, 256),
    GpuRow('bf16-autocast', 'infer', 224, 256, compile=True, est_s=60, models=GPU_COMPILE_MODELS),
    GpuRow('bf16-autocast', 'train', 224, 128, compile=True, est_s=90, models=GPU_COMPILE_MODELS),
]
# --gpu-scale tiny: the same rows at these sizes, batch 2, one warm-up step and one round of one
# step, without the compiled rows (and, on CPU, without float16: --precisions).
GPU_TINY_SIZES = {224: 64, 512: 96}
# The key of a result of the --gpu preset (its ratios are against the baseline of the same key).
GPU_KEY = ('precision', 'mode', 'compile', 'img_size', 'batch_size')


def gpu_rows(args) -> List[GpuRow]:
    """GPU_ROWS at args.gpu_scale, filtered by --precisions and --models (the baseline stays)."""
    rows = []
    for row in GPU_ROWS:
        if row.precision not in args.precisions or args.gpu_scale == 'tiny' and row.compile:
            continue
        names = [m for m in row.models if not args.models or m in args.models or m == args.baseline]
        if args.models:
            names += [m for m in args.models if m not in names and not row.compile]
        if args.gpu_scale == 'tiny':
            row = row._replace(img_size=GPU_TINY_SIZES.get(row.img_size, 64), batch=2, warmup=1, rounds=1,
                               iters=1, est_s=1.0)
        rows.append(row._replace(models=tuple(names)))
    return rows


def _one_line(e: BaseException, limit: int = 300) -> str:
    """An exception as one line for a CSV cell: its type and the first line of its message."""
    text = next((line.strip() for line in str(e).splitlines() if line.strip()), '')
    return f'{type(e).__name__}: {text}'[:limit]


def _free(device: str):
    gc.collect()
    if device.startswith('cuda'):
        torch.cuda.empty_cache()


def _measure_gpu_row(args, row: GpuRow, start: float) -> List[Dict]:
    """One row of the preset with Runner's round-robin; a model that fails gets its error instead."""
    row_args = copy.copy(args)
    row_args.compile, row_args.amp, row_args.channels_last = row.compile, '', False
    train = row.mode == 'train'
    setattr(row_args, 'train_batch_size' if train else 'batch_size', row.batch)
    nan = float('nan')
    results, runners = {}, []
    for name in row.models:
        results[name] = dict(precision=row.precision, mode=row.mode, compile=int(row.compile),
                             img_size=row.img_size, batch_size=row.batch, model=name, img_per_sec=nan,
                             speed_ratio=nan, peak_mem_mb=nan, mem_ratio=nan, warmup_s=nan, rounds=row.rounds,
                             iters=row.iters, error='')
        elapsed = time.perf_counter() - start
        if args.time_budget and elapsed + row.est_s > args.time_budget:
            results[name]['error'] = (f'skipped: at {elapsed:.0f} s, about {row.est_s:.0f} s more would pass '
                                      f'--time-budget {args.time_budget:.0f}')
            continue
        runner = None
        try:
            t0 = time.perf_counter()
            runner = Runner(row_args, name, row.img_size, train, row.precision)
            for _ in range(row.warmup):
                runner.step()  # (and the compile, the cuDNN autotuning)
            results[name]['warmup_s'] = time.perf_counter() - t0
            runners.append(runner)
        except Exception as e:  # noqa: BLE001 (any failure of one model: recorded, the others go on)
            results[name]['error'] = _one_line(e)
        del runner
        _free(args.device)
    for _ in range(row.rounds):
        for runner in list(runners):
            try:
                runner.measure(row.iters)
            except Exception as e:  # noqa: BLE001
                results[runner.name]['error'] = _one_line(e)
                runners.remove(runner)
                del runner
                _free(args.device)
    for runner in runners:
        measured = runner.result()
        results[runner.name].update(img_per_sec=measured['img_per_sec'], peak_mem_mb=measured['peak_mem_mb'])
    del runners
    if row.compile:
        torch._dynamo.reset()
    _free(args.device)
    return list(results.values())


def run_gpu(args) -> List[Dict]:
    """Every row of gpu_rows(args); the CSV (and its .md table) rewritten after each row."""
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device.startswith('cuda'):
        torch.backends.cudnn.benchmark = True
    rows = gpu_rows(args)
    start = time.perf_counter()
    results: List[Dict] = []
    for i, row in enumerate(rows):
        measured = _measure_gpu_row(args, row, start)
        results += measured
        _add_ratios(results, args.baseline, GPU_KEY)
        print(f'[{time.perf_counter() - start:5.0f} s] row {i + 1}/{len(rows)} {row.precision} {row.mode}'
              f'{" compiled" if row.compile else ""} {row.img_size} px b{row.batch}: '
              + ', '.join(f'{r["model"]} ' + (f'{r["img_per_sec"]:.0f} img/s' if r['img_per_sec'] == r['img_per_sec']
                                             else 'failed') for r in measured), flush=True)
        if args.csv:
            write_csv(results, args.csv)
            with open(os.path.splitext(args.csv)[0] + '.md', 'w') as f:
                print_gpu_table(results, args.baseline, file=f)
    args.elapsed_s = time.perf_counter() - start
    return results


def _fmt(value: float, spec: str) -> str:
    return format(value, spec) if value == value else '-'


def print_gpu_table(results: List[Dict], baseline: str, file=None):
    """The --gpu results as a markdown table (the errors after it, one line each)."""
    file = file or sys.stdout
    print(f'| precision | mode | compiled | px | batch | model | img/s | x {baseline} | peak MiB | memory x '
          '| warm-up s |', file=file)
    print('| --- | --- | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |', file=file)
    for r in results:
        print(f'| {r["precision"]} | {r["mode"]} | {"yes" if r["compile"] else "no"} | {r["img_size"]} | '
              f'{r["batch_size"]} | {r["model"]} | {_fmt(r["img_per_sec"], ".0f")} | {_fmt(r["speed_ratio"], ".2f")} '
              f'| {_fmt(r["peak_mem_mb"], ".0f")} | {_fmt(r["mem_ratio"], ".2f")} | {_fmt(r["warmup_s"], ".1f")} |',
              file=file)
    errors = [r for r in results if r['error']]
    if errors:
        print('', file=file)
    for r in errors:
        print(f'- {r["precision"]} {r["mode"]}{" compiled" if r["compile"] else ""} {r["img_size"]} px '
              f'b{r["batch_size"]} {r["model"]}: {r["error"]}', file=file)


def run_profile(args) -> List[Dict]:
    """torch.profiler over one bf16-autocast training step of each of args.profile (after warm-up):
    the top CUDA kernels by their own CUDA time and the top ops by host (CPU) time, written to
    args.profile_dir/profile-MODEL.txt; returns one summary per model."""
    from torch.autograd import DeviceType
    from torch.autograd.profiler_util import EventList
    from torch.profiler import ProfilerActivity, profile
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = args.device.startswith('cuda')
    if cuda:
        torch.backends.cudnn.benchmark = True
    size, batch, steps = (224, 128, 5) if args.gpu_scale == 'full' else (64, 2, 1)
    args.train_batch_size, args.compile, args.amp = batch, False, ''
    os.makedirs(args.profile_dir, exist_ok=True)
    summaries = []
    for name in args.profile:
        runner = Runner(args, name, size, True, 'bf16-autocast')
        for _ in range(3):
            runner.step()
        times = []
        for _ in range(steps):
            t0 = time.perf_counter()
            runner.step()
            times.append(time.perf_counter() - t0)
        step_ms = statistics.median(times) * 1e3
        with profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])) as prof:
            t0 = time.perf_counter()
            runner.step()
            profiled_ms = (time.perf_counter() - t0) * 1e3
        events = prof.key_averages()
        kernels = EventList([e for e in events if e.device_type == DeviceType.CUDA])
        kernel_ms = sum(e.self_device_time_total for e in kernels) / 1e3
        summary = dict(model=name, img_size=size, batch_size=batch, step_ms=step_ms, profiled_ms=profiled_ms,
                       kernel_ms=kernel_ms, kernels=sum(e.count for e in kernels),
                       top_kernel=max(kernels, key=lambda e: e.self_device_time_total).key if kernels else '-')
        path = os.path.join(args.profile_dir, f'profile-{name}.txt')
        with open(path, 'w') as f:
            print(f'# {name}: one bf16-autocast training step, batch {batch}, {size} px; {machine_description(args)}',
                  file=f)
            print(f'# step of {name}: {step_ms:.1f} ms (median of {steps}, unprofiled), {profiled_ms:.1f} ms '
                  f'profiled; CUDA kernels {kernel_ms:.1f} ms in {summary["kernels"]} launches '
                  f'({100 * kernel_ms / profiled_ms:.0f}% of the profiled step)', file=f)
            if kernels:
                print('\n## top 25 CUDA kernels by their own CUDA time\n', file=f)
                print(kernels.table(sort_by='self_device_time_total', row_limit=25, max_name_column_width=90), file=f)
            print('\n## top 25 ops by their own host (CPU) time\n', file=f)
            print(events.table(sort_by='self_cpu_time_total', row_limit=25, max_name_column_width=70), file=f)
        print(f'wrote {path}: step {step_ms:.1f} ms, kernels {kernel_ms:.1f} ms in {summary["kernels"]} launches, '
              f'top {summary["top_kernel"][:60]}', flush=True)
        summaries.append(summary)
        del runner, prof, events, kernels
        _free(args.device)
    return summaries


def write_csv(results: List[Dict], path: str):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f'{path}.tmp'
    with open(tmp, 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=list(results[0].keys()))
        writer.writeheader()
        writer.writerows(results)
    os.replace(tmp, path)  # (a run killed while it writes keeps the last whole file)


def plot(results: List[Dict], out_dir: str, title: str = '') -> List[str]:
    """Two figures like the paper's Figures 5 and 6: throughput and peak memory vs resolution."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for key, label, fname in (('img_per_sec', 'throughput (images/s)', 'throughput_vs_resolution.png'),
                              ('peak_mem_mb', 'peak memory (MB)', 'memory_vs_resolution.png')):
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
        for ax, mode in zip(axes, ('infer', 'train')):
            for name in dict.fromkeys(r['model'] for r in results):
                rows = sorted((r['img_size'], r[key]) for r in results if r['model'] == name and r['mode'] == mode)
                rows = [(s, v) for s, v in rows if v == v and v > 0]
                if rows:
                    ax.plot(*zip(*rows), marker='o', label=name)
            ax.set_xscale('log')
            ax.set_yscale('log')
            sizes = sorted({r['img_size'] for r in results})
            ax.set_xticks(sizes)
            ax.set_xticklabels([str(s) for s in sizes])
            ax.minorticks_off()
            ax.set_xlabel('input resolution (px)')
            ax.set_ylabel(label)
            ax.set_title(f'{"inference" if mode == "infer" else "training step"}')
            ax.grid(True, alpha=.3)
            ax.legend(fontsize=8)
        if title:
            fig.suptitle(title, fontsize=9)
        fig.tight_layout()
        path = os.path.join(out_dir, fname)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def cpu_name() -> str:
    """`lscpu`'s model name (/proc/cpuinfo's where lscpu is missing)."""
    try:
        out = subprocess.run(['lscpu'], capture_output=True, text=True, check=True).stdout
        return next(line.split(':', 1)[1].strip() for line in out.splitlines() if line.startswith('Model name'))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        pass
    try:
        with open('/proc/cpuinfo') as f:
            return next(line.split(':', 1)[1].strip() for line in f if line.startswith('model name'))
    except (OSError, StopIteration):
        return 'unknown CPU'


def cpu_half_isa() -> str:
    """The CPU's half-precision instructions (AMX tiles, AVX-512 BF16 / FP16) from /proc/cpuinfo."""
    try:
        with open('/proc/cpuinfo') as f:
            flags = next(line.split(':', 1)[1].split() for line in f if line.startswith('flags'))
    except (OSError, StopIteration):
        return 'half-precision ISA unknown'
    found = [f for f in ('amx_bf16', 'amx_fp16', 'avx512_bf16', 'avx512_fp16') if f in flags]
    return ' '.join(found) if found else 'no AMX / AVX-512 BF16 / FP16'


def machine_description(args) -> str:
    if args.device == 'cuda':
        return f'{torch.cuda.get_device_name()}, torch {torch.__version__}, CUDA {torch.version.cuda}'
    return (f'{cpu_name()} ({cpu_half_isa()}), {torch.get_num_threads()} threads, ATen CPU capability '
            f'{torch.backends.cpu.get_cpu_capability()}, torch {torch.__version__}')


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    machine = machine_description(args)
    if args.profile:
        return run_profile(args)
    if args.gpu:
        rows = gpu_rows(args)
        print(f'# {machine}; cudnn.benchmark {args.device.startswith("cuda")}, TF32 matmul '
              f'{torch.backends.cuda.matmul.allow_tf32}, cuDNN TF32 {torch.backends.cudnn.allow_tf32}; '
              f'{len(rows)} rows, {sum(len(r.models) for r in rows)} measures, --time-budget '
              f'{args.time_budget:.0f} s; writing {args.csv}', flush=True)
        results = run_gpu(args)
        print(f'\nwrote {args.csv} and {os.path.splitext(args.csv)[0]}.md; elapsed {args.elapsed_s:.0f} s\n')
        print_gpu_table(results, args.baseline)
        return results
    if args.targets:
        print(f'# {machine}; eager; median of {args.repeats} interleaved rounds')
        results = run_targets(args)
        print_targets(results, args.baseline)
    else:
        print(f'# {machine}; batch {args.batch_size} (infer) / {args.train_batch_size} (train); '
              f'{"amp " + args.amp if args.amp else "float32"}{", compiled" if args.compile else ""}')
        results = run(args)
        print_table(results, args.baseline)
    if args.csv:
        write_csv(results, args.csv)
        print(f'wrote {args.csv}')
    if args.plot_dir and not args.targets:
        for path in plot(results, args.plot_dir, title=machine):
            print(f'wrote {path}')
    return results


if __name__ == '__main__':
    main()

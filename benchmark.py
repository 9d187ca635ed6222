#!/usr/bin/env python3
"""Throughput and peak memory of models, as ratios to a baseline measured in the same run.

    .venv/bin/python benchmark.py --models dfformer_s18 cdfformer_s18 --baseline convformer_s18
    .venv/bin/python benchmark.py --sweep --img-size 224 384 512 768 1024 --csv docs/sweep.csv --plot-dir docs
    .venv/bin/python benchmark.py --targets   # the measures of the performance targets, as ratios to convformer_s18
    .venv/bin/python benchmark.py --targets --precisions bf16-autocast   # one precision's table

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
import csv
import ctypes
import gc
import logging
import os
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Optional

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
    args = p.parse_args(argv)
    check_numbers(p, args)
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


def _add_ratios(results: List[Dict], baseline: str):
    base = {(r['img_size'], r['mode']): r for r in results if r['model'] == baseline}
    for r in results:
        b = base.get((r['img_size'], r['mode']))
        r['speed_ratio'] = r['img_per_sec'] / b['img_per_sec'] if b else float('nan')
        r['mem_ratio'] = r['peak_mem_mb'] / b['peak_mem_mb'] if b and b['peak_mem_mb'] else float('nan')


def print_table(results: List[Dict], baseline: str, file=sys.stdout):
    print(f'{"model":<18} {"size":>5} {"mode":<6} {"batch":>5} {"img/s":>9} {"peak MB":>9} '
          f'{"speed/" + baseline:>24} {"mem/" + baseline:>22}', file=file)
    for r in results:
        print(f'{r["model"]:<18} {r["img_size"]:>5} {r["mode"]:<6} {r["batch_size"]:>5} {r["img_per_sec"]:>9.2f} '
              f'{r["peak_mem_mb"]:>9.0f} {r["speed_ratio"]:>24.3f} {r["mem_ratio"]:>22.3f}', file=file)


def write_csv(results: List[Dict], path: str):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=list(results[0].keys()))
        writer.writeheader()
        writer.writerows(results)


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

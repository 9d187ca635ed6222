"""The models on CUDA against the same models (same weights, random init) in float64 on the CPU:
float32 (TF32 off), bf16 / fp16 autocast and whole-model bf16 / fp16 casts at batch 2, 224 px;
non-square odd sizes; float32 gradients; no device-to-host sync in a bf16 training step.

The half-precision bounds are relative: at most HALF_SLACK x convformer_s18's error in the same
precision and size (convformer_s18 is the MetaFormer these models are measured against). Every
error is also appended to $DFFORMER_CUDA_REPORT (a markdown file) when that is set, and with
$DFFORMER_CUDA_TEST_BUDGET (seconds) the tests that would start later are skipped (the float64
references run on the CPU: their time depends on its cores); tools/gpu_check.sh sets both. The
order: the sync and gradient checks, then the outputs of the S18-sized models, then the larger.
On a machine without CUDA everything here is skipped."""
import copy
import os
import time

import pytest
import timm
import torch

import models

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason='no CUDA device: run tools/gpu_check.sh on a GPU machine')

BASELINE = 'convformer_s18'
_SIZE_ORDER = ('s18', 's36', 'm36', 'b36')
OURS = sorted(models.MODEL_ARCHS, key=lambda n: (_SIZE_ORDER.index(models.MODEL_ARCHS[n][0]), n))
FP32_TOL = 1e-5       # float32 output, relative L2 error against float64
GRAD_TOL = 1e-4       # float32 parameter gradients, likewise
HALF_SLACK = 1.5      # half precision: at most this times convformer_s18's error
GRAD_MODELS = ['dfformer_s18', 'cdfformer_s18', 'gfformer_s18', 'dfformer_s18_afno']

# (name, autocast dtype, dtype the model and input are cast to)
PRECISIONS = {
    'fp32': (None, torch.float32),
    'bf16-autocast': (torch.bfloat16, torch.float32),
    'fp16-autocast': (torch.float16, torch.float32),
    'bf16': (None, torch.bfloat16),
    'fp16': (None, torch.float16),
}
SIZES = {'224': (224, 224), '200x264': (200, 264), '65x97': (65, 97)}
# (precision, size) checked for every model: every precision at 224, float32 and fp16 autocast at the
# odd sizes.
CASES = [(p, '224') for p in PRECISIONS] + [(p, s) for s in ('200x264', '65x97') for p in ('fp32', 'fp16-autocast')]


_START = time.monotonic()
_BUDGET = float(os.environ.get('DFFORMER_CUDA_TEST_BUDGET') or 0)


@pytest.fixture(autouse=True)
def time_budget():
    if _BUDGET and time.monotonic() - _START > _BUDGET:
        pytest.skip(f'past DFFORMER_CUDA_TEST_BUDGET={_BUDGET:.0f} s')


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return ((a - b).norm() / b.norm()).item()


def _report(line: str):
    path = os.environ.get('DFFORMER_CUDA_REPORT')
    if path:
        with open(path, 'a') as f:
            f.write(line + '\n')


@pytest.fixture(scope='module', autouse=True)
def exact_float32():
    """TF32 off (for the float32 bounds), all CPU cores for the float64 references."""
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.get_num_threads())
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_num_threads(min(16, os.cpu_count() or 1))
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved[:2]
    torch.set_num_threads(saved[2])


def _input(size: str) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randn(2, 3, *SIZES[size], generator=g, dtype=torch.float64)


class Measured:
    """One model: float32 CPU weights, their float64 copy's outputs, and the errors of each case
    on CUDA (computed on first use, kept while the tests of this model run)."""

    def __init__(self, name: str):
        torch.manual_seed(0)
        self.name = name
        self.model = timm.create_model(name).eval()
        self.cpu64 = copy.deepcopy(self.model).double()
        self.cuda = copy.deepcopy(self.model).cuda()
        self.refs, self.errors = {}, {}

    def reference(self, size: str) -> torch.Tensor:
        if size not in self.refs:
            with torch.no_grad():
                self.refs[size] = self.cpu64(_input(size))
        return self.refs[size]

    def error(self, precision: str, size: str) -> float:
        if (precision, size) not in self.errors:
            autocast, dtype = PRECISIONS[precision]
            model = self.cuda if dtype == torch.float32 else copy.deepcopy(self.cuda).to(dtype)
            x = _input(size).to('cuda', dtype)
            with torch.no_grad(), torch.autocast('cuda', dtype=autocast or torch.float16, enabled=autocast is not None):
                out = model(x)
            assert out.shape == (2, 1000) and torch.isfinite(out).all(), (self.name, precision, size)
            self.errors[(precision, size)] = rel_err(out, self.reference(size))
            _report(f'| {self.name} | {precision} | {size} | {self.errors[(precision, size)]:.2e} |')
        return self.errors[(precision, size)]


_current = {}


def measured(name: str) -> Measured:
    """The model under test (one at a time: the previous one is dropped, memory stays small)."""
    if name not in _current:
        _current.clear()
        torch.cuda.empty_cache()
        _current[name] = Measured(name)
    return _current[name]


@pytest.fixture(scope='module')
def baseline_errors():
    """convformer_s18's error in every (precision, size) of CASES, computed once."""
    base = measured(BASELINE)
    return {case: base.error(*case) for case in CASES}


def test_ours_are_all_checked():
    assert set(timm.list_models('*dfformer*')) | set(timm.list_models('gfformer*')) <= set(OURS)
    assert {'dfformer_s18', 'cdfformer_s18', 'gfformer_s18', 'dfformer_s18_afno'} <= set(OURS)


def test_bf16_training_step_has_no_device_to_host_sync():
    """forward + backward of dfformer_s18 under bf16 autocast, after a warm-up step, with
    torch.cuda.set_sync_debug_mode('error'): any synchronizing call (.item(), a host copy,
    nonzero, ...) raises."""
    _current.clear()
    torch.manual_seed(0)
    model = timm.create_model('dfformer_s18').cuda().train()
    x = torch.randn(2, 3, 224, 224, device='cuda')

    def step():
        with torch.autocast('cuda', dtype=torch.bfloat16):
            loss = model(x).float().square().mean()
        loss.backward()

    step()
    torch.cuda.synchronize()
    model.zero_grad(set_to_none=True)
    torch.cuda.set_sync_debug_mode('error')
    try:
        step()
    finally:
        torch.cuda.set_sync_debug_mode('default')
    torch.cuda.synchronize()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(g.is_cuda for g in grads)


def _grads(model: torch.nn.Module, x: torch.Tensor):
    """The parameters' gradients of loss = mean of the squared logits (train mode), as one float64
    CPU vector, and the names of the parameters that got none."""
    model.train()
    model.zero_grad(set_to_none=True)
    model(x).square().mean().backward()
    params = list(model.named_parameters())
    grads = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten().double().cpu()
                       for _, p in params])
    return grads, {n for n, p in params if p.grad is None}


@pytest.mark.parametrize('name', GRAD_MODELS)
def test_float32_gradients_match_cpu_float64(name):
    m = measured(name)
    x = _input('224')
    ref, ref_none = _grads(m.cpu64, x)
    got, got_none = _grads(m.cuda, x.to('cuda', torch.float32))
    m.cpu64.eval(), m.cuda.eval()
    assert got_none == ref_none, f'{name}: parameters without a gradient differ: {sorted(got_none ^ ref_none)}'
    err = rel_err(got, ref)
    _report(f'| {name} | fp32 gradients | 224 | {err:.2e} |')
    assert err <= GRAD_TOL, f'{name} float32 gradients: relative L2 error {err:.2e} > {GRAD_TOL:.0e}'


@pytest.mark.parametrize('name,precision,size', [(n, p, s) for n in [BASELINE] + OURS for p, s in CASES])
def test_output_matches_cpu_float64(name, precision, size, baseline_errors):
    err = measured(name).error(precision, size)
    if precision == 'fp32':
        assert err <= FP32_TOL, f'{name} float32 {size}: relative L2 error {err:.2e} > {FP32_TOL:.0e}'
    else:
        limit = HALF_SLACK * baseline_errors[(precision, size)]
        assert err <= limit, (f'{name} {precision} {size}: relative L2 error {err:.2e} > {HALF_SLACK} x '
                              f'{BASELINE}\'s {baseline_errors[(precision, size)]:.2e}')

"""The engine on a GPU: the same streams as on the CPU, full float32, reproducible.

Every test here is `cuda`-marked: skipped (with the reason shown) where no GPU is visible,
run by `pytest -m cuda` (benchmarks/gpu_check.sh) where one is. What can be checked on the
CPU is checked there too: the dropout rule against an independent NumPy oracle
(tests/engine/test_rng.py), permutations drawn on the CPU, precision pinning through the
current API (tests/checks/test_checks.py).
"""

import os
import subprocess
import sys
import textwrap
from dataclasses import replace

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from ablate.cli import app
from ablate.data import load_npz
from ablate.design import load_study
from ablate.engine import (
    CohortDropout,
    CohortMLP,
    DeviceData,
    Optimizer,
    check_full_precision,
    prepare_data,
    replica_bytes,
    train_cohort,
)
from ablate.engine import _rng as rng
from ablate.engine._step import WARMUP, Stepper
from ablate.errors import UserError
from ablate.metric import METRICS
from tests.data_fixtures import SUBSET
from tests.engine.test_train import _config

pytestmark = pytest.mark.cuda

CUDA = torch.device("cuda")
SEEDS = [0, 1, 2]


@pytest.fixture(scope="module")
def cpu_data() -> DeviceData:
    return prepare_data(load_npz(SUBSET), validation=400, subset=600, device="cpu")


@pytest.fixture(scope="module")
def gpu_data() -> DeviceData:
    return prepare_data(load_npz(SUBSET), validation=400, subset=600, device=CUDA)


def test_dropout_masks_are_the_same_bits_on_the_gpu() -> None:
    r = np.random.default_rng(0)
    for _ in range(20):
        key, step = int(r.integers(0, 2**63 - 1)), int(r.integers(0, 2**31 - 1))
        rows, features, p = int(r.integers(1, 200)), int(r.integers(1, 600)), float(r.random())
        on_gpu = rng.dropout_keep(key, step, rows, features, p, device=CUDA).cpu()
        assert torch.equal(on_gpu, rng.dropout_keep(key, step, rows, features, p))
    keys = [rng.dropout_key(s, 0) for s in SEEDS]
    x = torch.randn(3, 64, 50, dtype=torch.float64)
    drop = CohortDropout([0.5, 0.3, 0.1], keys)
    drop.step = 17
    expected = drop(x)
    drop.to(CUDA).step = torch.tensor(17, dtype=torch.int32, device=CUDA)
    assert torch.equal(drop(x.to(CUDA)).cpu(), expected)


def test_a_model_built_for_the_gpu_trains_there() -> None:
    """No CPU generator is left inside a model moved to the GPU (dropout keeps no state)."""
    config = _config("sgd", dropout=0.5)
    model = CohortMLP(config, SEEDS).to(CUDA)
    model.set_step(torch.zeros((), dtype=torch.int32, device=CUDA))
    logits = model(torch.rand(3, 16, 784, device=CUDA))
    logits.sum().backward()
    assert all(p.grad is not None and p.grad.is_cuda for p in model.parameters())


def test_a_seed_is_the_same_stream_on_the_gpu_as_on_the_cpu(cpu_data: DeviceData,
                                                             gpu_data: DeviceData) -> None:
    """Initial weights bit for bit; then, in float64, the same training run up to rounding.

    The minibatch order and dropout masks are the same bits on both devices, so only the
    order of summation inside matmuls and reductions differs (1e-16 relative per op);
    2 epochs x 10 steps leave the losses within 1e-9, as in the cohort-vs-plain test.
    """
    config = _config("momentum", dropout=0.5, batch_norm="after")
    cpu_model, gpu_model = CohortMLP(config, SEEDS), CohortMLP(config, SEEDS).to(CUDA)
    for name, t in cpu_model.state_dict().items():
        assert torch.equal(gpu_model.state_dict()[name].cpu(), t)
    a = train_cohort(config, SEEDS, cpu_data, select_on=METRICS["val_loss"], dtype=torch.float64)
    b = train_cohort(config, SEEDS, gpu_data, select_on=METRICS["val_loss"], dtype=torch.float64)
    for ea, eb in zip(a.history, b.history, strict=True):
        np.testing.assert_allclose(eb.train_loss, ea.train_loss, rtol=1e-9)
        np.testing.assert_allclose(eb.val_loss, ea.val_loss, rtol=1e-9)
        assert np.array_equal(eb.val_accuracy, ea.val_accuracy)


def test_same_seed_same_gpu_is_bitwise_identical(gpu_data: DeviceData) -> None:
    config = _config("adam", dropout=0.5)
    a = train_cohort(config, SEEDS, gpu_data, select_on=METRICS["val_accuracy"])
    b = train_cohort(config, SEEDS, gpu_data, select_on=METRICS["val_accuracy"])
    for ea, eb in zip(a.history, b.history, strict=True):
        assert np.array_equal(ea.train_loss, eb.train_loss)
        assert np.array_equal(ea.val_loss_halves, eb.val_loss_halves)
        assert np.array_equal(ea.grad_norms, eb.grad_norms)
    for ra, rb in zip(a.replicas, b.replicas, strict=True):
        assert all(torch.equal(ra.state[k], rb.state[k]) for k in ra.state)


def test_tf32_is_pinned_off_while_training(gpu_data: DeviceData) -> None:
    """A process that asked for TF32 still trains in full float32 (bit for bit as one that
    did not), and gets its setting back afterwards. It asks through the legacy API, which
    sets the current one too (cuBLAS raises at a matmul if the two disagree)."""
    backend = torch.backends.cuda.matmul
    saved, saved_legacy = backend.fp32_precision, torch.get_float32_matmul_precision()
    config = _config("sgd", dropout=0.0)
    clean = train_cohort(config, SEEDS, gpu_data, select_on=METRICS["val_accuracy"])
    torch.set_float32_matmul_precision("high")  # TF32 matmuls: both APIs say so
    try:
        if torch.cuda.get_device_capability(CUDA)[0] >= 8:  # TF32 exists from Ampere on
            with pytest.raises(UserError, match="TF32"):
                check_full_precision(CUDA)  # unpinned: the probe sees TF32
        pinned = train_cohort(config, SEEDS, gpu_data, select_on=METRICS["val_accuracy"])
        assert backend.fp32_precision == "tf32"
        assert torch.get_float32_matmul_precision() == "high"
    finally:
        torch.set_float32_matmul_precision(saved_legacy)
        backend.fp32_precision = saved
    for ea, eb in zip(clean.history, pinned.history, strict=True):
        assert np.array_equal(ea.train_loss, eb.train_loss)


_PROBE = textwrap.dedent("""
    import sys, torch
    from ablate.engine import pinned_precision
    from ablate.errors import UserError
    cuda = torch.device("cuda")
    if sys.argv[1] == "matmul-first":
        torch.ones(64, 64, device=cuda) @ torch.ones(64, 64, device=cuda)
    try:
        with pinned_precision(cuda):  # its probe: 1 + 2^-15 survives full float32 matmuls
            print("full float32", torch.backends.cuda.matmul.allow_tf32)
    except UserError as e:
        print("refused:", e)
""")


@pytest.mark.parametrize("when", ["pinned-first", "matmul-first"])
def test_the_tf32_environment_override_never_trains_silently(when: str) -> None:
    """TORCH_ALLOW_TF32_CUBLAS_OVERRIDE=1 is read at `import torch` and starts both
    precision APIs at TF32 (a matmul before the pin runs in TF32). The pin sets both to
    full float32, so cuBLAS (which raises when they disagree) runs the probe in full
    float32 whether or not a matmul came first, and the legacy flag reads False."""
    env = {**os.environ, "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE": "1"}
    run = subprocess.run([sys.executable, "-c", _PROBE, when], env=env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["full", "float32", "False"], run.stdout


def test_ablate_check_on_a_gpu_index_past_the_last_is_exit_2() -> None:
    result = CliRunner().invoke(app, ["check", "--device", f"cuda:{torch.cuda.device_count()}"])
    assert result.exit_code == 2 and "GPU" in result.output


def test_the_memory_estimate_bounds_a_measured_cohort() -> None:
    """`replica_bytes`, which sizes GPU cohorts, is an upper bound of the memory a cohort
    of the notebook's model 1 (Adam: two slots) takes beyond its data."""
    config = load_study("studies/dropout.toml").with_overrides(epochs=1).baseline.config
    config = replace(config, optimizer=replace(
        config.optimizer, name="adam", lr=0.001, beta1=0.9, beta2=0.999, eps=1e-7,
        bias_correction="step_size"))
    data = prepare_data(load_npz(SUBSET), validation=400, subset=1600, device=CUDA)
    data.train_images(torch.float32)  # the data's own memory, before measuring
    S = 8
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats(CUDA)
    before = torch.cuda.memory_allocated(CUDA)
    train_cohort(config, list(range(S)), data, select_on=METRICS["val_accuracy"])
    used = torch.cuda.max_memory_allocated(CUDA) - before
    assert used <= S * replica_bytes(config), (used, S * replica_bytes(config))


def _captured(gpu_data: DeviceData, optimizer: str) -> None:
    config = _config(optimizer, dropout=0.5, epochs=3)
    eager = train_cohort(config, SEEDS, gpu_data, select_on=METRICS["val_loss"])
    graph = train_cohort(config, SEEDS, gpu_data, select_on=METRICS["val_loss"], capture=True)
    for ea, eb in zip(eager.history, graph.history, strict=True):
        assert np.array_equal(ea.train_loss, eb.train_loss)
        assert np.array_equal(ea.grad_norms, eb.grad_norms)
    for ra, rb in zip(eager.replicas, graph.replicas, strict=True):
        assert all(torch.equal(ra.state[k], rb.state[k]) for k in ra.state)


@pytest.mark.parametrize("optimizer", ["sgd", "momentum"])
def test_a_captured_step_trains_as_the_eager_one(gpu_data: DeviceData, optimizer: str) -> None:
    """`capture=True` replays full-batch steps from a CUDA graph (the same kernels on the
    same buffers): the same losses and weights, bit for bit, as eager steps."""
    _captured(gpu_data, optimizer)


def test_capture_uses_one_side_stream_on_the_datas_device(gpu_data: DeviceData) -> None:
    """Warm-up and capture share one side stream, made on the data's device."""
    config = _config("sgd", dropout=0.5)
    model = CohortMLP(config, SEEDS).to(CUDA)
    opt = Optimizer(config.optimizer, list(model.parameters()))
    x = gpu_data.train_images(torch.float32)
    step = Stepper(model, opt, x, gpu_data.y_train, 64, "graph")
    words = model.dropout_words(0, WARMUP + 2).to(CUDA)
    idx = torch.randint(0, len(gpu_data.y_train), (len(SEEDS), 64), device=CUDA)
    sides = []
    for k in range(WARMUP + 2):
        step(idx, words[k])
        sides.append(step.side)
    assert step.graph is not None and sides[0] is not None
    assert all(s is sides[0] for s in sides) and sides[0].device == x.device


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_a_step_captured_on_the_second_gpu_trains_as_the_eager_one() -> None:
    """On cuda:1, with cuda:0 current, the graph records the step (it would record nothing
    on cuda:0's streams)."""
    data = prepare_data(load_npz(SUBSET), validation=400, subset=600,
                        device=torch.device("cuda:1"))
    _captured(data, "sgd")


@pytest.mark.parametrize(("optimizer", "capture"), [("adam", False), ("momentum", True)])
def test_a_cohort_resumed_on_the_gpu_equals_the_uninterrupted_one(
        gpu_data: DeviceData, optimizer: str, capture: bool) -> None:
    """The state goes through the CPU (saved with `.cpu()`, restored with `copy_`), and a
    captured step is captured again after a resume: neither may change a number."""
    from tests.engine.test_state import assert_same_run

    config = _config(optimizer, dropout=0.3, epochs=3)
    saved = []
    plain = train_cohort(config, SEEDS, gpu_data, select_on=METRICS["val_accuracy"],
                         capture=capture, on_state=saved.append)
    assert [s.epoch for s in saved] == [1, 2]
    for s in saved:
        resumed = train_cohort(config, SEEDS, gpu_data, select_on=METRICS["val_accuracy"],
                               capture=capture, resume=s.data)
        assert_same_run(plain, resumed)

"""Training throughput: ablate's cohort engine vs a plain per-run PyTorch loop.

All train the notebook's model 1 (512-BN-Drop, 128-BN-Drop, 64-BN, 10 softmax; SGD lr
0.01, batch 128) on real MNIST images, in this one process, alternating, so machine
noise hits all alike. (a) is one 10-seed cohort; (b) is the loop most people write:
a DataLoader over a TensorDataset, nn.Sequential, torch.optim.SGD, `.item()` each step;
(c) is a careful per-run loop: the data scaled once and left on the device, a permutation
drawn there, slices, the loss summed on the device (no per-step sync): the fair baseline
on a GPU, where (b)'s row-by-row DataLoader and per-step sync dominate. Throughput is
training images per second summed over seeds, the same work on every side (no
validation pass; the packing rounds below validate, as studies do); the engine's FLOP
rate is reported as a fraction of this machine's fp32 matmul rate, measured here too
(full float32: training pins it, TF32 off).

    python benchmarks/train_throughput.py [--images 12800] [--rounds 3] [--device cpu]
                                          [--data mnist|subset]

`--data subset` tiles the committed 2,000-image subset (tests/data) instead of MNIST,
for a machine without the MNIST cache: throughput does not depend on which images.

Lines `speedup: N.NNx` (engine over plain loop) and `speedup over the careful loop: N.NNx`
give the medians' ratios. Then the dropout study's two arms x 10 seeds, trained as one
packed 20-replica cohort and as one cohort per arm, alternating; the last line reads
`packing speedup: N.NNx` (per-arm time over packed time, medians).
"""

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

# Run as a script, Python puts benchmarks/ first on sys.path: ablate (and tests/) come
# from this tree, installed or not (a bare copy of it on a GPU machine).
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ablate.data import load as load_mnist
from ablate.data import load_npz
from ablate.design import load_study
from ablate.engine import (
    DeviceData,
    RunConfig,
    layer_sizes,
    matmul_flops,
    pinned_precision,
    prepare_data,
    resolve_device,
    train_cohort,
)
from ablate.metric import METRICS

SEEDS = list(range(10))
SUBSET = ROOT / "tests" / "data" / "mnist_subset.npz"


def subset_expected() -> dict[str, str]:
    """The committed subset's sha256 per array (as tests/data_fixtures.py records them)."""
    from tests.data_fixtures import subset_expected as expected

    return expected()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def engine_round(config, d: DeviceData, capture: bool = False) -> float:  # noqa: ANN001
    """Images per second (all seeds) of one epoch of a 10-seed cohort, training only (no
    validation pass: the per-run loops do none), model construction included."""
    d = replace(d, x_val=d.x_val[:0], y_val=d.y_val[:0], val_half=d.val_half[:0])
    _sync(d.device)
    t0 = time.perf_counter()
    train_cohort(config, SEEDS, d, select_on=METRICS["val_accuracy"], capture=capture)
    _sync(d.device)
    return len(SEEDS) * len(d.y_train) / (time.perf_counter() - t0)


def packing_round(arms: list[RunConfig], d: DeviceData) -> tuple[float, float]:
    """Seconds to train every arm's 10 seeds packed into one cohort, then one cohort per arm."""
    _sync(d.device)
    t0 = time.perf_counter()
    train_cohort([c for c in arms for _ in SEEDS], SEEDS * len(arms), d,
                 select_on=METRICS["val_accuracy"])
    _sync(d.device)
    t1 = time.perf_counter()
    for config in arms:
        train_cohort(config, SEEDS, d, select_on=METRICS["val_accuracy"])
    _sync(d.device)
    return t1 - t0, time.perf_counter() - t1


def model_1(seed: int, device: torch.device) -> tuple[nn.Module, torch.optim.Optimizer]:
    """The notebook's model 1 as one plain run builds it, with its SGD optimizer."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Linear(784, 512), nn.ReLU(), nn.BatchNorm1d(512), nn.Dropout(0.5),
        nn.Linear(512, 128), nn.ReLU(), nn.BatchNorm1d(128), nn.Dropout(0.5),
        nn.Linear(128, 64), nn.ReLU(), nn.BatchNorm1d(64),
        nn.Linear(64, 10)).to(device)
    return model, torch.optim.SGD(model.parameters(), lr=0.01)


def plain_round(d: DeviceData, seed: int) -> float:
    """Images per second of one epoch of one run, written the usual way."""
    model, opt = model_1(seed, d.device)
    x = d.x_train.float() / 255
    loader = DataLoader(TensorDataset(x, d.y_train), batch_size=128, shuffle=True)
    _sync(d.device)
    t0 = time.perf_counter()
    total = 0.0
    for xb, yb in loader:
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += loss.item()
    _sync(d.device)
    return len(d.y_train) / (time.perf_counter() - t0)


def tiled_subset(images: int, device: torch.device) -> DeviceData:
    """The committed 2,000-image subset repeated to `images` training images (and 2,000
    validation images): real digits where the MNIST cache is missing."""
    sub = prepare_data(load_npz(SUBSET, subset_expected()), 0, None, device)
    reps = -(-max(images, 2000) // len(sub.y_train))
    x, y = sub.x_train.repeat(reps, 1), sub.y_train.repeat(reps)
    return DeviceData(x[:images], y[:images], x[:2000], y[:2000], x[:0], y[:0],
                      (torch.arange(2000, device=device) % 2))


def careful_round(d: DeviceData, seed: int) -> float:
    """Images per second of one epoch of one run, written with the device in mind."""
    model, opt = model_1(seed, d.device)
    x, y = d.x_train.float() / 255, d.y_train  # on the device, scaled once
    n = len(y)
    _sync(d.device)
    t0 = time.perf_counter()
    perm = torch.randperm(n, device=d.device)
    total = torch.zeros((), device=d.device)
    for i in range(0, n, 128):
        idx = perm[i:i + 128]
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += loss.detach()
    total.item()  # one sync, at the end
    _sync(d.device)
    return n / (time.perf_counter() - t0)


def train_flops_per_image(config) -> float:  # noqa: ANN001
    """Matmul FLOPs per training image: forward, weight gradient, and input gradient
    (not needed for the first layer, whose input is data)."""
    total = 0
    for i, (fan_in, fan_out) in enumerate(layer_sizes(config)):
        macs = fan_in * fan_out
        total += 2 * macs * (2 if i == 0 else 3)
    return float(total)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=12_800, help="training images per epoch")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data", choices=("mnist", "subset"), default="mnist")
    args = parser.parse_args()
    device = resolve_device(args.device)
    # the engine at this process's thread count, as the loops and the matmul rate run
    study = load_study(ROOT / "studies" / "dropout.toml").with_overrides(
        epochs=1, threads=torch.get_num_threads())
    config = study.baseline.config
    if args.data == "mnist":
        d = prepare_data(load_mnist(progress=False), 10_000, args.images, device)
    else:
        d = tiled_subset(args.images, device)
    d = DeviceData(d.x_train, d.y_train, d.x_val[:2000], d.y_val[:2000], d.x_test[:0],
                   d.y_test[:0], d.val_half[:2000])
    print(f"data: {'MNIST' if args.data == 'mnist' else 'the committed subset, tiled'}")
    peak = matmul_flops(device, n=2048 if device.type == "cuda" else 1024)
    print(f"device {device}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"fp32 matmul: {peak / 1e9:.1f} GFLOP/s; {args.images} images/epoch; "
          f"{len(SEEDS)} seeds per cohort")
    with pinned_precision(device):  # every loop in full float32, as the engine trains
        measure(config, d, peak, args.rounds)
        if device.type == "cuda":
            measure_capture(config, d, args.rounds)
        measure_packing([a.config for a in study.arms], d, args.rounds)


def measure_capture(config, d: DeviceData, rounds: int) -> None:  # noqa: ANN001
    """The engine with its full-batch steps replayed from a CUDA graph, against eager."""
    engine_round(config, d, capture=True)  # warm-up
    eager, graph = [], []
    for _ in range(rounds):
        eager.append(engine_round(config, d))
        graph.append(engine_round(config, d, capture=True))
    e, g = statistics.median(eager), statistics.median(graph)
    print(f"captured step (CUDA graph): {g:,.0f} img/s, {g / e:.2f}x the eager engine "
          f"({e:,.0f} img/s)")


def measure_packing(arms: list[RunConfig], d: DeviceData, rounds: int) -> None:
    packed, separate = [], []
    for r in range(rounds):
        a, b = packing_round(arms, d)
        packed.append(a)
        separate.append(b)
        print(f"packing round {r + 1}: {len(arms)} arms x {len(SEEDS)} seeds packed {a:.2f} s, "
              f"one cohort per arm {b:.2f} s")
    print(f"packing speedup: {statistics.median(separate) / statistics.median(packed):.2f}x")


def measure(config, d: DeviceData, peak: float, rounds: int) -> None:  # noqa: ANN001
    """Alternating rounds; the matmul rate is measured again before and after each engine
    round, so that the engine's share of it compares like with like on a shared machine."""
    engine_round(config, d), plain_round(d, 0), careful_round(d, 0)  # warm-up
    engine, plain, careful, shares = [], [], [], []
    flops = train_flops_per_image(config)
    for r in range(rounds):
        before = matmul_flops(d.device, n=2048 if d.device.type == "cuda" else 1024)
        engine.append(engine_round(config, d))
        after = matmul_flops(d.device, n=2048 if d.device.type == "cuda" else 1024)
        shares.append(engine[-1] * flops / ((before + after) / 2))
        plain.append(plain_round(d, r))
        careful.append(careful_round(d, r))
        print(f"round {r + 1}: engine {engine[-1]:,.0f} img/s ({shares[-1]:.0%} of fp32 matmul "
              f"at {(before + after) / 2e9:.0f} GFLOP/s around it), plain loop "
              f"{plain[-1]:,.0f} img/s, careful loop {careful[-1]:,.0f} img/s")
    e, p, c = (statistics.median(x) for x in (engine, plain, careful))
    rate = e * flops
    print(f"median: engine {e:,.0f} img/s, plain loop {p:,.0f} img/s, careful loop {c:,.0f} "
          "img/s")
    plain_rate = p * flops
    print(f"engine FLOP rate: {rate / 1e9:.1f} GFLOP/s = {statistics.median(shares):.0%} of "
          f"measured fp32 matmul (median of the rounds; {rate / peak:.0%} of the first "
          "measurement)")
    print(f"plain loop FLOP rate: {plain_rate / 1e9:.1f} GFLOP/s = {plain_rate / peak:.0%}; "
          f"2.5x the plain loop would need {2.5 * plain_rate / peak:.0%} of it")
    print(f"speedup: {e / p:.2f}x")
    print(f"speedup over the careful loop: {e / c:.2f}x")


if __name__ == "__main__":
    main()

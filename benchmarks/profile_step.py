"""Where a cohort's training step spends its time: torch.profiler over one short epoch.

Trains the notebook's model 1 (the dropout study's baseline: 512-BN-Drop, 128-BN-Drop,
64-BN, 10 softmax; SGD, batch 128) as one 10-seed cohort on real MNIST images, without
validation, under torch.profiler, and prints the ops by self time with the matmuls'
share. Run it on a quiet machine (`uptime`): the shares are what to optimise, not the
absolute times.

    python benchmarks/profile_step.py [--images 6400] [--device cpu] [--rows 25]
"""

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

from torch.profiler import ProfilerActivity, profile

# Run as a script, Python puts benchmarks/ first on sys.path: ablate (and tests/) come
# from this tree, installed or not (a bare copy of it on a GPU machine).
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ablate.data import load as load_mnist
from ablate.design import load_study
from ablate.engine import prepare_data, resolve_device, train_cohort
from ablate.metric import METRICS

SEEDS = list(range(10))
MATMULS = ("aten::bmm", "aten::baddbmm", "aten::mm", "aten::addmm")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=6400, help="training images")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rows", type=int, default=25, help="ops to list")
    args = parser.parse_args()
    device = resolve_device(args.device)
    config = load_study(ROOT / "studies" / "dropout.toml").with_overrides(epochs=1).baseline.config
    d = prepare_data(load_mnist(progress=False), 10_000, args.images, device)
    d = replace(d, x_val=d.x_val[:0], y_val=d.y_val[:0], val_half=d.val_half[:0],
                x_test=d.x_test[:0], y_test=d.y_test[:0])
    train_cohort(config, SEEDS, d, select_on=METRICS["val_accuracy"])  # warm-up
    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    t0 = time.perf_counter()
    with profile(activities=activities) as prof:
        train_cohort(config, SEEDS, d, select_on=METRICS["val_accuracy"])
    wall = time.perf_counter() - t0
    events = prof.key_averages()
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(events.table(sort_by=sort, row_limit=args.rows))
    attr = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    total = sum(getattr(e, attr) for e in events)
    matmul = sum(getattr(e, attr) for e in events if e.key in MATMULS)
    steps = -(-args.images // config.batch_size)
    print(f"{steps} steps in {wall:.2f} s under the profiler ({wall / steps * 1e3:.1f} ms/step);"
          f" matmuls {matmul / total:.0%} of self time, the rest {1 - matmul / total:.0%}")
    for e in sorted(events, key=lambda e: -getattr(e, attr))[:12]:
        print(f"  {e.key:40s} {getattr(e, attr) / total:6.1%}  {e.count / steps:6.1f} calls/step")


if __name__ == "__main__":
    main()

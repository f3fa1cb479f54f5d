"""What the pinned thread count costs: the dropout study's packed cohort at 1 and N threads.

A study's runs train at `RunConfig.threads` torch intra-op threads (default 1), because
CPU kernels round differently at another count. This measures what that choice costs on
this machine: the dropout study's two arms x 10 seeds as one packed 20-replica cohort,
one epoch, trained at each thread count in turn, alternating rounds so machine noise
hits all alike, on the committed 2,000-image subset tiled to `--images` (throughput does
not depend on which images).

    python benchmarks/thread_cost.py [--images 6400] [--rounds 3] [--threads 1 2]
    python benchmarks/thread_cost.py --quick      # 1,280 images, 2 rounds

Prints each count's median seconds and `threads N / threads 1: X.XXx` (the medians'
ratio; above 1 means N threads is slower). It also checks, once, that the two counts
give different numbers (the reason the count is part of the config), and says so.
"""

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ablate.design import load_study
from ablate.engine import CohortResult, train_cohort
from ablate.metric import METRICS
from benchmarks.train_throughput import tiled_subset

SEEDS = list(range(10))


def cohort(threads: int, images: int) -> tuple[float, CohortResult]:
    """Seconds for one epoch of the packed cohort at `threads`, and its result."""
    study = load_study(ROOT / "studies" / "dropout.toml")
    configs = [replace(a.run_config, epochs=1, threads=threads) for a in study.arms
               for _ in SEEDS]
    data = tiled_subset(images, torch.device("cpu"))
    t0 = time.perf_counter()
    result = train_cohort(configs, SEEDS * len(study.arms), data,
                          select_on=METRICS["val_accuracy"])
    return time.perf_counter() - t0, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=6400, help="training images per epoch")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--quick", action="store_true", help="1,280 images, 2 rounds")
    args = parser.parse_args()
    if args.quick:
        args.images, args.rounds = 1280, 2
    counts = sorted(set(args.threads) | {1})
    print(f"{torch.get_num_threads()} threads by default here, torch {torch.__version__}; "
          f"{args.images} images, 20 replicas, {args.rounds} rounds")
    seconds: dict[int, list[float]] = {n: [] for n in counts}
    losses: dict[int, bytes] = {}
    for _ in range(args.rounds):
        for n in counts:
            took, result = cohort(n, args.images)
            seconds[n].append(took)
            losses[n] = result.history[-1].train_loss.tobytes()
    base = statistics.median(seconds[1])
    for n in counts:
        median = statistics.median(seconds[n])
        print(f"threads {n}: median {median:.2f} s")
        if n != 1:
            same = "the same" if losses[n] == losses[1] else "different"
            print(f"threads {n} / threads 1: {median / base:.2f}x ({same} numbers)")


if __name__ == "__main__":
    main()

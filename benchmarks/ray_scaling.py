"""The Ray executor against the in-process one: same results, and what Ray costs.

Runs one small study (4 widths x 2 seeds, MLPs of 256-128 and narrower, real MNIST:
four cohorts, since arms of different widths cannot share one) three ways, each as its
own `ablate study` process on a fresh run directory:

  in-process                 the default executor, torch on every core;
  ray, 1 worker              --executor ray --cpus-per-cohort <all cores>: one cohort
                             at a time, as in-process, plus Ray's start-up and transfers;
  ray, 2 workers             --executor ray --cpus-per-cohort <half>: two at a time.

It checks that the three run directories hold the same numbers (every metric and the
sha256 of every checkpoint), prints the wall times (medians over --rounds), and ends
with `ray overhead: N.NNx` (ray with one worker over in-process; the wall time counts
Ray's start-up, which a longer study amortises).

    python benchmarks/ray_scaling.py [--rounds 3] [--epochs 6] [--subset 10000]

Needs Ray (`pip install 'ablate[ray]'`) and MNIST in the cache (`ablate data fetch`).
"""

import argparse
import hashlib
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STUDY = """
name = "ray-scaling"
question = "How much does the Ray executor cost on one machine?"
seeds = 2
validation = 5000
rope = 0.002

[base]
layers = [256, 128]
dropout = 0.2
batch_size = 128
epochs = {epochs}

[factors.width]
baseline = "w256"
levels.w256 = {{}}
levels.w224 = {{ layers = [224, 128] }}
levels.w192 = {{ layers = [192, 128] }}
levels.w160 = {{ layers = [160, 128] }}
"""


def run(study: Path, out: Path, subset: int, *extra: str) -> float:
    """Wall seconds of one `ablate study` process (start-up included, as a user sees it)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ablate.cli", "study", str(study), "--out", str(out),
                    "--subset", str(subset), "--no-report", *extra], check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def stored(run_dir: Path) -> list[tuple]:
    """Every run's status and metrics, and its checkpoint's sha256, in a fixed order."""
    with sqlite3.connect(run_dir / "runs.sqlite") as db:
        rows = db.execute("SELECT arm, seed, status, val_accuracy, crossfit_val_accuracy, "
                          "test_loss, test_accuracy, checkpoint FROM runs ORDER BY arm, seed"
                          ).fetchall()
    return [(*row[:-1], hashlib.sha256((run_dir / row[-1]).read_bytes()).hexdigest())
            for row in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--subset", type=int, default=10_000)
    args = parser.parse_args()
    try:
        import ray  # noqa: F401
    except ImportError:
        sys.exit("Ray is not installed: pip install 'ablate[ray]' (or make install)")
    cores = os.cpu_count() or 1
    variants = {
        "in-process": (),
        "ray, 1 worker": ("--executor", "ray", "--cpus-per-cohort", str(cores)),
        "ray, 2 workers": ("--executor", "ray", "--cpus-per-cohort", str(max(1, cores // 2))),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory() as tmp:
        study = Path(tmp) / "study.toml"
        study.write_text(STUDY.format(epochs=args.epochs))
        results = {}
        for r in range(args.rounds):  # interleaved, so machine noise hits every variant
            for name, extra in variants.items():
                out = Path(tmp) / f"{name.replace(', ', '-').replace(' ', '-')}-{r}"
                times[name].append(run(study, out, args.subset, *extra))
                results[name, r] = stored(out / "ray-scaling")
        first = results["in-process", 0]
        same = all(v == first for v in results.values())
    print(f"{cores} cores; study: 4 arms x 2 seeds x {args.epochs} epochs on {args.subset} "
          f"images; {args.rounds} rounds")
    print(f"{'executor':<16}{'median s':>10}{'min s':>9}{'max s':>9}")
    for name, ts in times.items():
        print(f"{name:<16}{statistics.median(ts):>10.1f}{min(ts):>9.1f}{max(ts):>9.1f}")
    print(f"stored results identical across executors and rounds: {'yes' if same else 'NO'}")
    base = statistics.median(times["in-process"])
    print(f"ray 2 workers over in-process: "
          f"{statistics.median(times['ray, 2 workers']) / base:.2f}x")
    print(f"ray overhead: {statistics.median(times['ray, 1 worker']) / base:.2f}x")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()

"""What resuming inside a cohort costs: the size of a cohort's saved state and the time
saving it takes at the default interval (after every epoch), against training without
saving, measured in the same run.

The cohort is the dropout study's: both arms x 10 seeds packed into one 20-replica
cohort of the notebook's model 1 (512-BN-Drop, 128-BN-Drop, 64-BN, 10; SGD, batch 128),
trained for `--epochs` epochs of `--images` images (with a 2,000-image validation pass
per epoch, as studies run), alternately without saving and saving each state as a study
does (`ablate.study._resume.CohortStates.write`: atomic, fsynced, into a temporary run
directory), so machine noise hits both alike. Printed, as medians over `--rounds`:

- `state size`: bytes of one saved state;
- `save`: seconds one save takes, timed directly (encoding in the engine, plus the
  write), and as a share of an epoch's training at this size and projected to a full
  MNIST epoch (50,000 images; the save costs the same, the epoch scales with images);
- `end to end`: (time with saving - time without) / time without, whole runs: noisier
  than the direct timing on a loaded machine (it can come out negative).

    python benchmarks/resume_cost.py [--images 12800] [--epochs 3] [--rounds 3]
                                     [--data mnist|subset] [--quick]

`--quick`: 2,000 images, 2 epochs, 2 rounds (a smoke run; its share is larger, its
epoch being short). The target: at most 2% of training time at the default interval.
"""

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # ablate (and tests/) from this tree, installed or not

from ablate.data import load as load_mnist
from ablate.data import load_npz
from ablate.design import load_study
from ablate.engine import DeviceData, SavedState, prepare_data, resolve_device, train_cohort
from ablate.engine import _train as engine_train
from ablate.metric import METRICS
from ablate.study import CohortTask, Replica
from ablate.study._resume import CohortStates

SEEDS = list(range(10))
FULL_EPOCH = 50_000  # MNIST's training images less the dropout study's validation split
SUBSET = ROOT / "tests" / "data" / "mnist_subset.npz"


def tiled_subset(images: int, device: torch.device) -> DeviceData:
    """The committed 2,000-image subset repeated to `images` training images (and 2,000
    validation images), for a machine without the MNIST cache."""
    from tests.data_fixtures import subset_expected

    sub = prepare_data(load_npz(SUBSET, subset_expected()), 0, None, device)
    reps = -(-max(images, 2000) // len(sub.y_train))
    x, y = sub.x_train.repeat(reps, 1), sub.y_train.repeat(reps)
    return DeviceData(x[:images], y[:images], x[:2000], y[:2000], x[:0], y[:0],
                      (torch.arange(2000, device=device) % 2))


class Timed:
    """Wraps the engine's state encoder, adding up the seconds it takes."""

    def __init__(self, encode: Callable[[Any], bytes]) -> None:
        self.encode, self.seconds = encode, 0.0

    def __call__(self, state: Any) -> bytes:
        t0 = time.perf_counter()
        out = self.encode(state)
        self.seconds += time.perf_counter() - t0
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=12_800, help="training images per epoch")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data", choices=("mnist", "subset"), default="mnist")
    parser.add_argument("--quick", action="store_true", help="2,000 images, 2 epochs, 2 rounds")
    args = parser.parse_args()
    if args.quick:
        args.images, args.epochs, args.rounds = 2000, 2, 2
    device = resolve_device(args.device)
    study = load_study(ROOT / "studies" / "dropout.toml").with_overrides(epochs=args.epochs)
    configs = [a.config for a in study.arms for _ in SEEDS]
    seeds = SEEDS * len(study.arms)
    if args.data == "mnist":
        d = prepare_data(load_mnist(progress=False), 10_000, args.images, device)
        d = DeviceData(d.x_train, d.y_train, d.x_val[:2000], d.y_val[:2000], d.x_test[:0],
                       d.y_test[:0], d.val_half[:2000])
    else:
        d = tiled_subset(args.images, device)
    task = CohortTask(tuple(Replica(a.name, s, a.config, "benchmark") for a in study.arms
                            for s in SEEDS), METRICS["val_accuracy"])
    print(f"device {device}, {torch.get_num_threads()} threads, torch {torch.__version__}; "
          f"{'MNIST' if args.data == 'mnist' else 'the committed subset, tiled'}")
    print(f"cohort: {len(seeds)} replicas of the dropout study's model; {args.images} images "
          f"an epoch, {args.epochs} epochs, {args.rounds} rounds")

    timed = Timed(engine_train.encode_state)
    engine_train.encode_state = timed  # type: ignore[assignment]
    plain, saving, per_save, sizes, epochs = [], [], [], [], []
    encodes, writes = [], []
    with tempfile.TemporaryDirectory() as scratch:
        states = CohortStates(Path(scratch))
        write_s = [0.0]
        saves: list[int] = []

        def on_state(saved: SavedState) -> None:
            t0 = time.perf_counter()
            states.write(task, saved)
            write_s[0] += time.perf_counter() - t0
            saves.append(len(saved.data))

        for _ in range(args.rounds):
            t0 = time.perf_counter()
            result = train_cohort(configs, seeds, d, select_on=METRICS["val_accuracy"])
            plain.append(time.perf_counter() - t0)
            epochs.append(statistics.median(e.seconds for e in result.history))
            saves.clear()
            timed.seconds = write_s[0] = 0.0
            t0 = time.perf_counter()
            train_cohort(configs, seeds, d, select_on=METRICS["val_accuracy"],
                         on_state=on_state)
            saving.append(time.perf_counter() - t0)
            per_save.append((timed.seconds + write_s[0]) / len(saves))
            encodes.append(timed.seconds / len(saves))
            writes.append(write_s[0] / len(saves))
            sizes.extend(saves)

    size, save_s, epoch_s = statistics.median(sizes), statistics.median(per_save), \
        statistics.median(epochs)
    full_epoch_s = epoch_s * FULL_EPOCH / args.images
    overhead = (statistics.median(saving) - statistics.median(plain)) / statistics.median(plain)
    print(f"state size: {size / 2**20:.1f} MiB ({size / len(seeds) / 2**20:.2f} MiB a replica)")
    print(f"save: {save_s:.3f} s (median; encode {statistics.median(encodes):.3f} s, atomic "
          f"write {statistics.median(writes):.3f} s); epoch {epoch_s:.2f} s here: "
          f"{100 * save_s / epoch_s:.2f}% of an epoch at {args.images} images; projected to a "
          f"full epoch ({FULL_EPOCH} images, ~{full_epoch_s:.0f} s): "
          f"{100 * save_s / full_epoch_s:.2f}%")
    print(f"end to end: {100 * overhead:+.2f}% (median {statistics.median(saving):.2f} s saving "
          f"vs {statistics.median(plain):.2f} s not, over {args.rounds} rounds)")


if __name__ == "__main__":
    main()

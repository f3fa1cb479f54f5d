"""How big a run's stored per-image predictions are, and what each part costs.

Trains a small study (two arms x 3 seeds, the committed MNIST subset by default, or the
MNIST cache with --data mnist) and prints, per run, the predictions file's size, and,
summed over the runs, each array's compressed bytes per image; then the size a run
would take at the default split sizes (10,000 validation and 10,000 test images) at
those per-image costs.

    python benchmarks/predictions_size.py [--data subset|mnist] [--epochs 12]
                                          [--layers 256]
"""

import argparse
import sys
import tempfile
import zipfile
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ablate  # noqa: E402
from ablate.api import Runtime  # noqa: E402
from ablate.data import load_npz  # noqa: E402
from ablate.store import Store  # noqa: E402

__all__ = ["main"]

SUBSET = Path(__file__).resolve().parents[1] / "tests" / "data" / "mnist_subset.npz"
STUDY = """
name = "sizes"
question = "How big are the stored predictions?"
seeds = 3
validation = {validation}
rope = 0.01

[base]
layers = [{layers}]
dropout = 0.3
optimizer = {{ name = "adam" }}
batch_size = 100
epochs = {epochs}

[factors.dropout]
baseline = "on"
levels.on = {{}}
levels.off = {{ dropout = 0.0 }}
"""


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", choices=("subset", "mnist"), default="subset")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--layers", type=int, default=256)
    args = p.parse_args(argv)
    subset = args.data == "subset"
    runtime = Runtime(load_mnist=lambda **_: load_npz(SUBSET)) if subset else Runtime()
    with tempfile.TemporaryDirectory() as tmp:
        study = Path(tmp) / "sizes.toml"
        study.write_text(STUDY.format(validation=400 if subset else 10_000,
                                      layers=args.layers, epochs=args.epochs))
        ablate.run_study(study, runtime=runtime, out=tmp, report=False)
        store = Store.open_existing(Path(tmp) / "sizes")
        try:
            parts: dict[str, int] = defaultdict(int)
            images: dict[str, int] = {}
            runs = [r for r in store.runs() if r.status == "done"]
            for r in runs:
                path = store.predictions_path(r.arm, r.seed)
                p_ = store.predictions(r.arm, r.seed)
                assert p_ is not None
                print(f"{r.arm} seed {r.seed}: {path.stat().st_size / 1024:.1f} KiB "
                      f"(test accuracy {100 * (r.test_accuracy or 0):.2f}%)")
                for info in zipfile.ZipFile(path).infolist():
                    parts[info.filename] += info.compress_size
                for name, s in p_.splits.items():
                    images[name] = len(s.image)
        finally:
            store.close()
    n = len(runs)
    per_image = {}
    print("compressed bytes per image (mean over runs):")
    for name, size in sorted(parts.items()):
        split = name.split("/")[0]
        if split in images and images[split]:
            per_image[name] = size / n / images[split]
            print(f"  {name:22s} {per_image[name]:6.2f}")
    val = sum(v for k, v in per_image.items() if k.startswith("val_")) / 2  # a, b halves
    test = sum(v for k, v in per_image.items() if k.startswith("test/") and k != "test/probs.npy")
    probs = per_image.get("test/probs.npy", 0.0)
    print(f"at 10,000 validation + 10,000 test images: predictions "
          f"{(val + test) * 10_000 / 1024:.0f} KiB + test probabilities "
          f"{probs * 10_000 / 1024:.0f} KiB per run")


if __name__ == "__main__":
    main(sys.argv[1:])

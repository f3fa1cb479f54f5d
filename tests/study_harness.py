"""Run the real `ablate` CLI on the committed MNIST subset (no full data set needed).

    python -m tests.study_harness study STUDY.toml --out DIR ...

Only `ablate.data.load` is replaced, by a loader of tests/data/mnist_subset.npz;
everything else (CLI, runner, store, training) is the real code.
"""

import sys

from ablate import data
from tests.data_fixtures import SUBSET, subset_expected

TINY_STUDY = """
name = "tiny"
question = "Does dropout change validation accuracy on a tiny MLP?"
seeds = 2
validation = 400          # of the subset's 2,000 training images
rope = 0.01

[base]
layers = [128]
dropout = 0.3
optimizer = { name = "adam" }
batch_size = 100
epochs = 6

[factors.dropout]
baseline = "on"
levels.on = {}
levels.off = { dropout = 0.0 }
levels.high = { dropout = 0.6 }
levels.low = { dropout = 0.1 }
"""


def load_subset(**_: object) -> data.Mnist:
    return data.load_npz(SUBSET, subset_expected())


def main(argv: list[str]) -> None:
    data.load = load_subset  # type: ignore[assignment]
    from ablate.cli import app

    app(argv, prog_name="ablate")


if __name__ == "__main__":
    main(sys.argv[1:])

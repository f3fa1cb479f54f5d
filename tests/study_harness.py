"""Run the real `ablate` CLI on the committed MNIST subset (no full data set needed).

    python -m tests.study_harness study STUDY.toml --out DIR ...

Only the MNIST loader differs: the CLI is given a `Runtime` (as its context object) that
loads tests/data/mnist_subset.npz; everything else (CLI, runner, store, training) is the
real code.
"""

import sys
from typing import Any

from typer.testing import CliRunner

from ablate import data
from ablate.api import Runtime
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



def dropout_study(name: str, question: str, *, seeds: int, width: int, dropout: float,
                  epochs: int = 3) -> str:
    """A small dropout on/off study (Adam, one hidden layer of `width`) on the subset."""
    return f"""
name = "{name}"
question = "{question}"
seeds = {seeds}
validation = 400
rope = 0.01

[base]
layers = [{width}]
dropout = {dropout}
optimizer = {{ name = "adam" }}
batch_size = 100
epochs = {epochs}

[factors.dropout]
baseline = "on"
levels.on = {{}}
levels.off = {{ dropout = 0.0 }}
"""

def load_subset(**_: object) -> data.Mnist:
    return data.load_npz(SUBSET, subset_expected())


SUBSET_RUNTIME = Runtime(load_mnist=load_subset)


class SubsetCliRunner(CliRunner):
    """A `CliRunner` whose `ablate study` trains on the committed subset."""

    def invoke(self, *args: Any, **kwargs: Any) -> Any:
        return super().invoke(*args, obj=SUBSET_RUNTIME, **kwargs)


def main(argv: list[str]) -> None:
    from ablate.cli import app

    app(argv, prog_name="ablate", obj=SUBSET_RUNTIME)


if __name__ == "__main__":
    main(sys.argv[1:])

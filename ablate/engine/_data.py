"""The data a cohort trains on, placed on its device: the fixed validation split and its
halves, the training images (all, or the first N of a fixed stratified order), the test
set; images stay uint8 on the device and are scaled to floats in [0, 1] once per dtype."""

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from ablate.data import Mnist, split, stratified_order, validation_halves
from ablate.engine._model import INPUTS

__all__ = ["DeviceData", "prepare_data", "scale"]


@dataclass(frozen=True)


class DeviceData:
    """The splits on the training device: images (n, 784) uint8, labels (n,) int64."""

    x_train: Tensor
    y_train: Tensor
    x_val: Tensor
    y_val: Tensor
    x_test: Tensor
    y_test: Tensor
    val_half: Tensor  # (n_val,) int64: 0 for validation half A, 1 for half B (cross-fitting)
    # (n_val,) int64 on the host: each validation row's index into MNIST's training images
    # (None: rows numbered 0..n_val-1, for data that is not MNIST's)
    val_index: np.ndarray | None = None
    # scaled training images per dtype, made on first use (a new DeviceData starts empty)
    _scaled: dict[torch.dtype, Tensor] = field(default_factory=dict, init=False, repr=False,
                                               compare=False)

    def train_images(self, dtype: torch.dtype) -> Tensor:
        """The training images as floats in [0, 1]: (n, 784), made once per dtype."""
        if dtype not in self._scaled:
            self._scaled[dtype] = scale(self.x_train, dtype)
        return self._scaled[dtype]

    @property
    def val_half_sizes(self) -> tuple[int, int]:
        b = int(self.val_half.sum())
        return len(self.val_half) - b, b

    @property
    def device(self) -> torch.device:
        return self.x_train.device


def prepare_data(mnist: Mnist, validation: int, subset: int | None,
                 device: torch.device | str) -> DeviceData:
    """Split off the fixed stratified validation set; `subset` keeps the first N training
    images of a fixed stratified order (smoke runs)."""
    train_idx, val_idx = split(mnist.y_train, validation)
    halves = validation_halves(mnist.y_train[val_idx])
    if subset is not None:
        order = train_idx[stratified_order(mnist.y_train[train_idx])]
        train_idx = np.sort(order[:subset])

    def put(x: np.ndarray, dtype: torch.dtype) -> Tensor:
        return torch.from_numpy(np.ascontiguousarray(x)).to(device=device, dtype=dtype)

    def images(x: np.ndarray) -> Tensor:
        return put(x.reshape(len(x), INPUTS), torch.uint8)  # also for an empty split

    return DeviceData(
        x_train=images(mnist.x_train[train_idx]), y_train=put(mnist.y_train[train_idx], torch.long),
        x_val=images(mnist.x_train[val_idx]), y_val=put(mnist.y_train[val_idx], torch.long),
        x_test=images(mnist.x_test), y_test=put(mnist.y_test, torch.long),
        val_half=put(halves, torch.long), val_index=val_idx,
    )


def scale(x: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """uint8 pixels -> floats in [0, 1], divided by 255 as the notebook did."""
    return x.to(dtype).div_(255.0)

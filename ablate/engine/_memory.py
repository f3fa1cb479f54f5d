"""The planner's memory model: how much device memory one replica of a config needs."""

import torch

from ablate.engine._config import RunConfig
from ablate.engine._evaluate import EVAL_CHUNK
from ablate.engine._model import INPUTS
from ablate.engine._optimizers import OPTIMIZER_SPECS

__all__ = ["replica_bytes"]


def replica_bytes(config: RunConfig, dtype: torch.dtype = torch.float32) -> int:
    """An upper estimate of one replica's device memory while training `config`.

    Parameters, gradients, optimizer slots, the kept (best) copy and the optimizer's
    temporaries (3 + slots copies); a step's activations (input, and per hidden layer
    about eight (batch, units) tensors: pre-activation, batch norm, activation, dropout
    draws and mask, and their gradients); an evaluation chunk (EVAL_CHUNK rows of the
    widest layer, three tensors at a time).
    """
    size = torch.tensor([], dtype=dtype).element_size()
    widths = [INPUTS, *(layer.units for layer in config.layers), 10]
    params = sum(a * b + b for a, b in zip(widths[:-1], widths[1:], strict=True))
    params += sum(4 * layer.units for layer in config.layers if layer.batch_norm != "off")
    activations = config.batch_size * (2 * INPUTS + 8 * sum(widths[1:]))
    evaluation = EVAL_CHUNK * (INPUTS + 3 * max(widths[1:]))
    return size * ((3 + len(OPTIMIZER_SPECS[config.optimizer.name].state)) * params + activations
                   + evaluation)

"""What trains: the resolved `RunConfig` (and the optimizer registry), the random streams
per (seed, purpose), the cohort layers and model (S replicas as one batched model), the
optimizers' update rules, `train_cohort` and the data it trains on, the device and its
provenance, a cohort's whole training state (`_state`: what an interrupted cohort
resumes from), and the single-model `Network` the service answers with.

Store-agnostic and study-agnostic: a cohort's configs, seeds and data in, its results out.
"""

from ablate.engine._config import (
    ACTIVATIONS,
    BATCH_NORM,
    INIT_ALIASES,
    INITS,
    STREAMS,
    BnRunningVar,
    InitConfig,
    LayerConfig,
    OptimizerConfig,
    RunConfig,
    Stream,
    StreamSeeds,
    cohort_key,
    run_config_from_dict,
)
from ablate.engine._crossfit import CrossFit, crossfit
from ablate.engine._data import DeviceData, prepare_data, scale
from ablate.engine._device import (
    MATMUL_PRECISION,
    ablate_version,
    check_full_precision,
    free_memory,
    matmul_flops,
    matmul_precision,
    pinned_precision,
    pinned_threads,
    provenance,
    resolve_device,
    visible,
)
from ablate.engine._layers import (
    Activation,
    CohortBatchNorm,
    CohortDropout,
    CohortLinear,
    init_bias,
    init_weight,
)
from ablate.engine._memory import replica_bytes
from ablate.engine._model import (
    CLASSES,
    INPUTS,
    CohortMLP,
    initial_dense,
    layer_sizes,
    layers_text,
    optimizer_text,
    parameter_count,
    replica_state,
    summary_rows,
)
from ablate.engine._network import Network, TensorMismatch, network_tensors
from ablate.engine._optim import Optimizer
from ablate.engine._optimizers import (
    HYPERPARAMETERS,
    OPTIMIZER_SPECS,
    OPTIMIZERS,
    OptimizerSpec,
)
from ablate.engine._results import CohortResult, Epoch
from ablate.engine._rng import seed_generator
from ablate.engine._state import (
    SavedState,
    SaveEvery,
    StateMismatch,
    decode_state,
    encode_state,
    state_digest,
    state_position,
)
from ablate.engine._step import replica_losses
from ablate.engine._train import train_cohort

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "BATCH_NORM",
    "CLASSES",
    "CohortBatchNorm",
    "CohortDropout",
    "CohortLinear",
    "CohortMLP",
    "CohortResult",
    "CrossFit",
    "DeviceData",
    "Epoch",
    "INITS",
    "INIT_ALIASES",
    "INPUTS",
    "MATMUL_PRECISION",
    "InitConfig",
    "LayerConfig",
    "Network",
    "OPTIMIZERS",
    "OPTIMIZER_SPECS",
    "HYPERPARAMETERS",
    "BnRunningVar",
    "OptimizerSpec",
    "Optimizer",
    "OptimizerConfig",
    "RunConfig",
    "SaveEvery",
    "SavedState",
    "StateMismatch",
    "TensorMismatch",
    "init_bias",
    "init_weight",
    "initial_dense",
    "layer_sizes",
    "layers_text",
    "optimizer_text",
    "ablate_version",
    "check_full_precision",
    "cohort_key",
    "decode_state",
    "encode_state",
    "crossfit",
    "free_memory",
    "matmul_flops",
    "matmul_precision",
    "network_tensors",
    "parameter_count",
    "pinned_precision",
    "pinned_threads",
    "prepare_data",
    "provenance",
    "replica_bytes",
    "replica_losses",
    "replica_state",
    "resolve_device",
    "run_config_from_dict",
    "STREAMS",
    "Stream",
    "StreamSeeds",
    "scale",
    "seed_generator",
    "state_digest",
    "state_position",
    "summary_rows",
    "train_cohort",
    "visible",
]

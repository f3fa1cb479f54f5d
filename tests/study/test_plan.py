"""Planning: what the config hash covers, and how runs are cut into cohorts."""

import torch

from ablate.engine import replica_bytes
from ablate.study import load_study
from ablate.study._plan import MAX_COHORT, chunks, cohort_limit, data_settings

STUDY = load_study("studies/dropout.toml")
CPU, CUDA = torch.device("cpu"), torch.device("cuda")  # a device name; no GPU needed


def test_the_config_hash_names_the_device_type_and_the_matmul_precision() -> None:
    """A study resumed on another kind of device must not pair CPU-trained seeds with
    GPU-trained ones: the hash of the same config differs between device types, not
    between two GPUs of one type."""
    config = STUDY.baseline.config
    cpu, cuda = data_settings(STUDY, None, CPU), data_settings(STUDY, None, CUDA)
    assert cpu["device_type"] == "cpu" and cuda["device_type"] == "cuda"
    assert cpu["matmul_precision"] == cuda["matmul_precision"] == "ieee"
    assert config.digest(**cpu) != config.digest(**cuda)
    assert config.digest(**cuda) == config.digest(**data_settings(STUDY, None,
                                                                  torch.device("cuda:1")))


def test_cohorts_are_as_few_and_as_even_as_the_limit_allows() -> None:
    assert chunks(list(range(20)), 32) == [list(range(20))]
    assert [len(c) for c in chunks(list(range(20)), 16)] == [10, 10]
    assert [len(c) for c in chunks(list(range(33)), 16)] == [11, 11, 11]
    assert chunks([], 16) == []
    assert sum(chunks(list(range(7)), 1), []) == list(range(7))


def test_cohort_limit_is_fixed_on_the_cpu_and_memory_aware_on_a_gpu() -> None:
    config = STUDY.baseline.config
    per_replica = replica_bytes(config)
    assert cohort_limit(config, "cpu", None) == MAX_COHORT["cpu"] >= 20  # dropout: 2 x 10
    assert cohort_limit(config, "cuda", 10**12) == MAX_COHORT["cuda"]
    # half of the free memory, in whole replicas; never fewer than one
    assert cohort_limit(config, "cuda", 40 * per_replica) == 20
    assert cohort_limit(config, "cuda", per_replica // 10) == 1

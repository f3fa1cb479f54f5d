"""The single-model inference network against the cohort model it is exported from.

A run is trained and evaluated as one replica of a `CohortMLP`; it is served as a
`Network` built from that replica's tensors. Serving must compute what evaluation
computed (eval mode: running statistics, no dropout) for every architecture a study
can build, so each case below compares the two on the same rows.
"""

import itertools

import numpy as np
import pytest
import torch

from ablate.conventions import optimizer_config
from ablate.engine import (
    ACTIVATIONS,
    CohortMLP,
    InitConfig,
    LayerConfig,
    Network,
    RunConfig,
    TensorMismatch,
    network_tensors,
    replica_state,
)


def config(batch_norm: str, activation: str, dropout: float) -> RunConfig:
    return RunConfig(
        conventions="keras", layers=(LayerConfig(24, activation, batch_norm, dropout),
                                     LayerConfig(12, activation, batch_norm, 0.0)),
        leaky_slope=0.3, bn_momentum=0.01, bn_eps=1e-3, bn_running_var="biased",
        init=InitConfig("glorot_uniform", None, False),
        optimizer=optimizer_config("keras", "sgd", lr=0.01), epochs=1, batch_size=8)


def trained_like(c: RunConfig, seeds: list[int]) -> CohortMLP:
    """A cohort whose BN statistics and affine parameters are far from their initial
    values (as after training), so a network that ignored them would disagree."""
    model = CohortMLP(c, seeds)
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.startswith("bn") or name.endswith(".bias"):  # biases start at 0
                noise = torch.rand(t.shape, generator=g)
                t.copy_(0.5 + noise if "var" in name or "weight" in name else noise - 0.5)
    return model.eval()


CASES = list(itertools.product(("off", "before", "after"), ACTIVATIONS, (0.0, 0.5)))


@pytest.mark.parametrize("batch_norm, activation, dropout", CASES)
def test_network_computes_what_the_cohort_evaluates(batch_norm: str, activation: str,
                                                    dropout: float) -> None:
    c = config(batch_norm, activation, dropout)
    cohort = trained_like(c, [3, 4])
    x = torch.rand(16, 784, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = cohort(x)  # (2, 16, 10): shared rows, eval mode
    for s in range(2):
        state = replica_state(cohort, s)
        assert {k: tuple(v.shape) for k, v in state.items()} == network_tensors(c)
        net = Network.from_tensors(c, state)
        with torch.no_grad():
            got = net(x)
        # Same float32 operations up to the order of BLAS accumulation: ~1e-6.
        torch.testing.assert_close(got, want[s], atol=1e-5, rtol=1e-5)
        p = net.probabilities(x.numpy())
        assert p.dtype == np.float32 and p.shape == (16, 10)
        np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-6)
        np.testing.assert_allclose(p, torch.softmax(want[s].double(), 1).numpy(), atol=1e-6)


def test_a_network_refuses_tensors_that_do_not_fit() -> None:
    c = config("after", "relu", 0.5)
    state = replica_state(trained_like(c, [0]), 0)
    cases = {
        "missing ['bn1.running_var']": {k: v for k, v in state.items()
                                        if k != "bn1.running_var"},
        "unexpected ['blocks.0.weight']": {**state, "blocks.0.weight": state["dense0.weight"]},
        "shapes differ": {**state, "dense0.weight": state["dense0.weight"].T.contiguous()},
        "not finite float32": {**state, "dense1.bias": state["dense1.bias"].double()},
    }
    nan = dict(state)
    nan["bn0.weight"] = nan["bn0.weight"].clone()
    nan["bn0.weight"][3] = float("nan")
    cases["tensor bn0.weight is not finite"] = nan
    for words, tensors in cases.items():
        with pytest.raises(TensorMismatch, match=words.replace("[", r"\[").replace("]", r"\]")):
            Network.from_tensors(c, tensors)

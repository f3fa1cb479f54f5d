"""Shared test set-up: Hypothesis profiles (registered once, here), data fixtures, and
the `cuda` marker's skip where no GPU is visible."""

import os

import pytest
import torch
from hypothesis import HealthCheck, settings

# dev: quick local iterations; ci: derandomized and bounded so CI time is predictable.
settings.register_profile("dev", max_examples=25, deadline=None)
settings.register_profile(
    "ci",
    max_examples=40,
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`cuda`-marked tests need a GPU: without one they are skipped, saying so."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (none visible): run `pytest -m cuda` "
                                   "on a GPU machine, e.g. benchmarks/gpu_check.sh")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)

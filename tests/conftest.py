"""Shared test set-up: Hypothesis profiles (registered once, here) and data fixtures."""

import os

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

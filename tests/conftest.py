"""Shared test set-up: Hypothesis profiles (registered once, here), the browser, and the
`cuda` marker.

Tests marked `browser` drive headless Chromium (ABLATE_CHROMIUM, else `chromium`,
`chromium-browser` or `google-chrome` on PATH). Without one they are skipped, with the
reason in the test summary, so `make test` passes on a bare machine; with
ABLATE_REQUIRE_BROWSER=1 (CI sets it) a missing browser fails them instead. Tests marked
`cuda` need a GPU: without one they are skipped, saying so.
"""

import os
import shutil
from pathlib import Path

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

NO_BROWSER = ("no headless Chromium: install it (Debian: apt-get install -y chromium) or point "
              "ABLATE_CHROMIUM at one")
NO_GPU = ("needs a CUDA GPU (none visible): run `pytest -m cuda` on a GPU machine, e.g. "
          "benchmarks/gpu_check.sh")


def find_chromium() -> str | None:
    """The Chromium to use: ABLATE_CHROMIUM if set (and executable), else one on PATH."""
    configured = os.environ.get("ABLATE_CHROMIUM")
    if configured:
        return configured if Path(configured).is_file() and os.access(configured, os.X_OK) \
            else None
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    return None


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip `cuda` tests without a GPU; skip (or, when CI requires them, fail) browser
    tests without Chromium, before their fixtures start servers for nothing."""
    if item.get_closest_marker("cuda") is not None and not torch.cuda.is_available():
        pytest.skip(NO_GPU)
    if item.get_closest_marker("browser") is None or find_chromium() is not None:
        return
    if os.environ.get("ABLATE_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{NO_BROWSER}; ABLATE_REQUIRE_BROWSER=1 requires the browser tests",
                    pytrace=False)
    pytest.skip(NO_BROWSER)


@pytest.fixture(scope="session")
def chromium() -> str:
    """The path of headless Chromium (the `browser` marker has made sure there is one)."""
    path = find_chromium()
    assert path is not None, "mark the test @pytest.mark.browser"
    return path

"""Service settings from ABLATE_SERVE_* variables; what `ablate serve` accepts."""

from pathlib import Path

import pytest

from ablate.errors import UserError
from ablate.export import resolve_model
from serve.config import BatchConfig, Limits, ServeConfig, from_env


def test_defaults_without_variables() -> None:
    assert from_env({"PATH": "/bin", "ABLATE_DATA_DIR": "/x"}) == ServeConfig()


def test_variables_are_applied_and_typed() -> None:
    config = from_env({"ABLATE_SERVE_BATCHING": "off", "ABLATE_SERVE_MAX_BATCH": "32",
                       "ABLATE_SERVE_MAX_WAIT_MS": "0.5", "ABLATE_SERVE_MAX_ITEMS": "8",
                       "ABLATE_SERVE_THREADS": "2"})
    assert config.batching == BatchConfig(enabled=False, max_batch=32, max_wait_ms=0.5)
    assert config.limits == Limits(max_items=8) and config.threads == 2


@pytest.mark.parametrize("env, words", [
    ({"ABLATE_SERVE_MAX_BATCHES": "3"}, "did you mean ABLATE_SERVE_MAX_BATCH"),
    ({"ABLATE_SERVE_BATCHING": "maybe"}, "use on or off"),
    ({"ABLATE_SERVE_MAX_BATCH": "lots"}, "an integer"),
    ({"ABLATE_SERVE_MAX_WAIT_MS": "-1"}, "negative"),
    ({"ABLATE_SERVE_MAX_BATCH": "0"}, "max_batch >= 1"),
    ({"ABLATE_SERVE_THREADS": "0"}, "at least 1"),
])
def test_mistakes_name_the_variable(env: dict[str, str], words: str) -> None:
    with pytest.raises(UserError, match=words):
        from_env(env)


def test_serve_needs_a_run_directory_or_a_model(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such file or directory"):
        resolve_model(tmp_path / "nothing", tmp_path)
    with pytest.raises(UserError, match="runs.sqlite"):
        resolve_model(tmp_path, tmp_path)  # a directory, but no study in it

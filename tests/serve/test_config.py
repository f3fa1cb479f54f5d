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
    ({"ABLATE_SERVE_MAX_WAIT_MS": "-1"}, "ABLATE_SERVE_MAX_WAIT_MS=-1: must be 0 to 1000"),
    ({"ABLATE_SERVE_MAX_BATCH": "0"}, "ABLATE_SERVE_MAX_BATCH=0: must be 1 to"),
    ({"ABLATE_SERVE_THREADS": "0"}, "ABLATE_SERVE_THREADS=0: must be 1 to"),
])
def test_mistakes_name_the_variable(env: dict[str, str], words: str) -> None:
    with pytest.raises(UserError, match=words):
        from_env(env)


# Each would quietly switch a protection off or make every request fail.
NONSENSE = [
    ("MAX_BODY_BYTES", "0"),  # was: no body limit at all
    ("MAX_BODY_BYTES", "100"),  # smaller than one image's request
    ("MAX_BODY_BYTES", str(2**40)),
    ("MAX_BODY_BYTES", "1e6"),
    ("MAX_ITEMS", "0"),
    ("MAX_IMAGE_SIDE", "27"),
    ("MAX_IMAGE_PIXELS", "100"),
    ("MAX_IMAGE_PIXELS", str(10**9)),
    ("MAX_DECODES", "0"),
    ("MAX_QUEUE", "0"),
    ("MAX_QUEUE", "100"),  # fewer than MAX_ITEMS (256): big requests could never queue
    ("TIMEOUT_S", "0"),
    ("TIMEOUT_S", "nan"),
    ("MAX_WAIT_MS", "inf"),
    ("THREADS", "100000"),
    ("MAX_HELD_BODY_BYTES", "1000000"),  # under MAX_BODY_BYTES: an 8 MiB request never fits
    ("MAX_HELD_BODY_BYTES", "0"),
    ("DECODE_TIMEOUT_S", "0"),  # would stop every decode
    ("DECODE_TIMEOUT_S", "inf"),
    ("STALLED_BODY_S", "0"),  # would close every upload at once when the server is full
]


@pytest.mark.parametrize("suffix, value", NONSENSE, ids=[f"{k}={v}" for k, v in NONSENSE])
def test_nonsense_limits_are_refused_in_one_line_naming_the_variable(suffix: str, value: str
                                                                      ) -> None:
    with pytest.raises(UserError) as e:
        from_env({f"ABLATE_SERVE_{suffix}": value})
    message = str(e.value)
    assert message.startswith(f"ABLATE_SERVE_{suffix}={value}: ") and "\n" not in message


def test_the_queue_must_hold_the_largest_request() -> None:
    with pytest.raises(UserError, match="ABLATE_SERVE_MAX_ITEMS"):
        from_env({"ABLATE_SERVE_MAX_QUEUE": "100"})
    config = from_env({"ABLATE_SERVE_MAX_QUEUE": "100", "ABLATE_SERVE_MAX_ITEMS": "100"})
    assert (config.batching.max_queue, config.limits.max_items) == (100, 100)


def test_serve_refuses_nonsense_limits_before_loading_anything(tmp_path: Path) -> None:
    """Exit 2 and one line, before the (missing) model is even looked for."""
    import os
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "ablate.cli", "serve", str(tmp_path / "nope")],
                         env={**os.environ, "ABLATE_SERVE_MAX_BODY_BYTES": "0"},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("error: ABLATE_SERVE_MAX_BODY_BYTES=0: ")
    assert len(out.stderr.strip().splitlines()) == 1


def test_serve_needs_a_run_directory_or_a_model(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such file or directory"):
        resolve_model(tmp_path / "nothing", tmp_path)
    with pytest.raises(UserError, match="runs.sqlite"):
        resolve_model(tmp_path, tmp_path)  # a directory, but no study in it

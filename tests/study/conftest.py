"""Fixtures the study tests share: the tiny study file and a CLI runner on the subset."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.study_harness import TINY_STUDY, SubsetCliRunner


@pytest.fixture
def study_file(tmp_path: Path) -> Path:
    """The tiny study (tests.study_harness.TINY_STUDY) as a file of its own."""
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_STUDY)
    return path


@pytest.fixture
def cli() -> CliRunner:
    """The CLI with MNIST replaced by the committed subset."""
    return SubsetCliRunner()

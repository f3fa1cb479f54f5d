"""Fixtures for the service tests: a real trained study, its export, the app in-process
and a real `ablate serve` subprocess on 127.0.0.1."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from litestar.testing import TestClient

from ablate.export import export_best
from serve.app import create_app
from serve.config import BatchConfig, ServeConfig
from tests.serve.model_fixture import make_run_dir


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished dropout study (2 arms x 2 seeds, 3 epochs on the committed subset)."""
    return make_run_dir(tmp_path_factory.mktemp("study"))


@pytest.fixture(scope="session")
def model_path(run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_best(run_dir, to=tmp_path_factory.mktemp("export") / "model.safetensors")


@pytest.fixture
def model_copy(model_path: Path, tmp_path: Path) -> Path:
    """A private copy of the export, for tests that damage it."""
    dst = tmp_path / "model.safetensors"
    shutil.copy(model_path, dst)
    shutil.copy(model_path.with_suffix(".json"), dst.with_suffix(".json"))
    return dst


@pytest.fixture(scope="session")
def client(model_path: Path) -> Iterator[TestClient]:
    """The app in-process (lifespan run), batching on with its defaults."""
    with TestClient(create_app(model_path, "mnist", ServeConfig())) as c:
        yield c


def make_client(model_path: Path, **batching: object) -> TestClient:
    config = ServeConfig(batching=BatchConfig(**batching))  # type: ignore[arg-type]
    return TestClient(create_app(model_path, "mnist", config))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(source: Path, port: int, env: dict[str, str] | None = None,
                 timeout: float = 60.0, log: Path | None = None) -> subprocess.Popen[bytes]:
    """`ablate serve SOURCE --port PORT` in a subprocess, returned once it is ready; its
    output goes to `log` if given (a pipe nobody reads would stall a chatty server)."""
    with open(log, "wb") if log else tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ablate.cli", "serve", str(source), "--port", str(port)],
            env={**os.environ, **(env or {})}, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    url = f"http://127.0.0.1:{port}/v2/health/ready"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ablate serve exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    stop_server(proc)
    raise RuntimeError(f"ablate serve did not become ready in {timeout} s")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def live_server(run_dir: Path) -> Iterator[str]:
    """A real `ablate serve RUN_DIR` (exporting on the fly) on 127.0.0.1; its base URL."""
    port = free_port()
    proc = start_server(run_dir, port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_server(proc)

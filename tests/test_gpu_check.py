"""benchmarks/gpu_check.sh, the one-shot GPU proof, is ready to run on a GPU the first time.

A GPU is lent rarely and for minutes, so what can be known here is checked here: the
stages fit 8 minutes by their own limits and $OUT's 8 files; without a GPU the script
stops at once; the cuda tests collect and the benchmarks import ablate on a Python like
the device's (ablate not installed, the serving packages absent); and (slow, and in CI
by .ci/run) the whole rehearsal passes on the CPU.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
REHEARSAL = ROOT / "benchmarks" / "gpu_rehearsal"
BUDGET_S = 480  # 8 minutes: the proof's share of a 15-minute device lease
KILL_S = 5  # `timeout -k 5`: each stage may take 5 s more to die


def _stages() -> dict[str, int]:
    """stage name -> its time limit, as the script declares them."""
    found = re.findall(r"^stage (\w+) (\d+) ", SCRIPT.read_text(), re.MULTILINE)
    return {name: int(limit) for name, limit in found}


def _device_like_env(**extra: str) -> dict[str, str]:
    """The device's Python, here: ablate not installed, the serving packages hidden."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return {**env, "PYTHONPATH": str(REHEARSAL), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
            **extra}


def test_the_stages_fit_eight_minutes_and_eight_files() -> None:
    stages = _stages()
    assert list(stages) == ["environment", "cuda_tests", "check", "train_throughput",
                            "dropout_study"]
    assert sum(limit + KILL_S for limit in stages.values()) <= BUDGET_S
    # summary.txt (the environment inside it), one log per other stage, three reports
    assert 1 + (len(stages) - 1) + 3 <= 8


def test_the_cuda_tests_are_all_in_the_file_the_script_runs() -> None:
    """The script runs tests/engine/test_cuda.py alone (the whole tree would import the
    serving packages); a cuda-marked test elsewhere would never run on the GPU."""
    cuda = re.compile(r"^(@pytest\.mark\.cuda\b|pytestmark = pytest\.mark\.cuda)", re.MULTILINE)
    marked = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob("test_*.py")
                    if cuda.search(p.read_text()))
    assert marked == ["tests/engine/test_cuda.py"]
    assert "tests/engine/test_cuda.py" in SCRIPT.read_text()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_without_a_gpu_the_script_stops_at_once(tmp_path: Path) -> None:
    run = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "OUT": str(tmp_path / "out"),
                              "PYTHON": sys.executable})
    assert run.returncode == 2 and "no CUDA device is visible" in run.stderr
    assert "--rehearse" in run.stderr and not (tmp_path / "out").exists()


def test_the_cuda_tests_collect_without_the_serving_packages() -> None:
    """Issue 19's first finding: collecting the tree imported litestar (tests/serve's
    conftest), which the device image lacks, and nothing ran."""
    env = _device_like_env(PYTHONPATH=f"{REHEARSAL}{os.pathsep}{ROOT}")
    run = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "cuda",
                          "-p", "no:cacheprovider", "tests/engine/test_cuda.py"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert re.search(r"\d+ tests? collected", run.stdout), run.stdout
    hidden = subprocess.run([sys.executable, "-c", "import litestar"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert "hidden by the GPU-check rehearsal" in hidden.stderr  # the blocker works


@pytest.mark.parametrize("script", ["train_throughput.py", "profile_step.py",
                                    "stats_calibration.py", "gpu_environment.py"])
def test_a_benchmark_run_as_a_script_imports_ablate_from_its_tree(script: str,
                                                                  tmp_path: Path) -> None:
    """`python3 benchmarks/x.py` from anywhere, ablate not installed: Python puts
    benchmarks/ first on sys.path, and the script adds the tree's root."""
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--help"],
                         cwd=tmp_path, env=_device_like_env(), capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    assert "usage:" in run.stdout


def test_the_environment_stage_reports_the_precision_and_where_ablate_is() -> None:
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_environment.py"),
                          "--device", "cpu"], env=_device_like_env(), capture_output=True,
                         text=True, timeout=120, cwd="/")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE=" in run.stdout
    assert "precision inside ablate's pin: fp32_precision: cuda.matmul=ieee" in run.stdout
    assert f"from {ROOT / 'ablate'}" in run.stdout


MNIST = Path(os.environ.get("ABLATE_DATA_DIR") or Path.home() / ".cache" / "ablate") / \
    "mnist.npz"


@pytest.mark.slow
@pytest.mark.skipif(not MNIST.exists(), reason="needs the MNIST cache (ablate data fetch)")
def test_the_rehearsal_passes(tmp_path: Path) -> None:
    """Every stage on a fresh copy of the tree, on the CPU (about 1.5 minutes; .ci/run
    runs the same rehearsal in CI)."""
    out = tmp_path / "out"
    run = subprocess.run(["bash", str(SCRIPT), "--rehearse"], capture_output=True, text=True,
                         timeout=600, env={**os.environ, "OUT": str(out)})
    assert run.returncode == 0, run.stdout + run.stderr
    files = sorted(p.name for p in out.iterdir())
    assert files == ["check.log", "cuda_tests.log", "dropout_study.log", "report.html",
                     "report.json", "report.md", "summary.txt", "train_throughput.log"]
    summary = (out / "summary.txt").read_text()
    assert "every stage passed" in summary and "data: MNIST" in summary
    assert "data:image/png;base64," in (out / "report.html").read_text()

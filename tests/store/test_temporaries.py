"""Temporary files of writes cut short: left by a killed writer, removed by the next
driver once it holds the lease (and by no one else); a fault at a chosen point."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ablate.faults import ENV, reached
from ablate.files import atomic_write, remove_temporaries
from ablate.store import Store

ROOT = Path(__file__).parents[2]
KILLED_WRITE = """
import sys, torch
from ablate.store import Store
store = Store(sys.argv[1])
store.acquire()
store.write_checkpoint("a", 0, {"w": torch.ones(3)}, {})
"""


def test_a_killed_checkpoint_write_leaves_a_file_that_the_next_driver_removes(
        tmp_path: Path) -> None:
    env = {**os.environ, ENV: "checkpoint@1=kill", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", KILLED_WRITE, str(tmp_path)], env=env,
                          cwd=ROOT, capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    left = list(tmp_path.rglob(".*.tmp"))
    assert [p.name.startswith(".seed-0.safetensors.") for p in left] == [True]
    assert not (tmp_path / "checkpoints" / "a" / "seed-0.safetensors").exists()
    reader = Store(tmp_path)  # a reader (ablate runs, a dry run) leaves it alone
    reader.close()
    assert left[0].exists()
    store = Store(tmp_path)
    store.acquire()
    try:
        assert store.removed == left and not left[0].exists()
        store.write_checkpoint("a", 0, {"w": torch.ones(3)}, {})  # and the write is redone
        assert not list(tmp_path.rglob(".*.tmp"))
    finally:
        store.close()


def test_remove_temporaries_takes_only_atomic_writes_leftovers(tmp_path: Path) -> None:
    atomic_write(tmp_path / "kept.json", b"{}")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / ".x.json.abc123.tmp").write_bytes(b"half")
    (tmp_path / "notes.tmp").write_text("a user's file, not a hidden temporary one")
    assert remove_temporaries(tmp_path) == [tmp_path / "sub" / ".x.json.abc123.tmp"]
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [
        "kept.json", "notes.tmp"]


def test_a_fault_fires_at_its_turn_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                        ) -> None:
    go = tmp_path / "go"
    go.touch()  # already released: the hold returns at once, after saying it was reached
    monkeypatch.setenv(ENV, f"somewhere@2=wait:{go}")
    reached("elsewhere")
    reached("somewhere")
    assert not (tmp_path / "go.reached").exists()
    reached("somewhere")
    assert (tmp_path / "go.reached").exists()
    monkeypatch.setenv(ENV, "somewhere=explode")
    with pytest.raises(ValueError, match="kill, interrupt or wait"):
        reached("somewhere")

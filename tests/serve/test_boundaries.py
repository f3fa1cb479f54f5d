"""The service depends on the model card and the engine only: importing it (and its
start-up) loads neither the run store nor the study driver, the report or the CLI."""

import json
import subprocess
import sys

FORBIDDEN = ("ablate.store", "ablate.study", "ablate.report", "ablate.stats", "ablate.export",
             "ablate.cli", "ablate.api")


def test_serve_imports_neither_the_store_nor_the_cli() -> None:
    code = ("import json, sys, serve.app, serve.server; "
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('ablate'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    loaded = json.loads(out.stdout)
    assert "ablate.card" in loaded and "ablate.engine" in loaded  # the test sees imports
    assert not [m for m in loaded if m.startswith(FORBIDDEN)], loaded


def test_serving_a_model_file_loads_no_statistics() -> None:
    """`ablate serve MODEL` imports the CLI and the export module (to resolve its source)
    but not the study package, whose statistics bring SciPy (~65 MiB of server RSS)."""
    code = ("import json, sys, ablate.cli, ablate.export, serve.server; "
            "print(json.dumps(sorted(m for m in sys.modules "
            "if m.split('.')[0] in ('scipy', 'matplotlib', 'pandas', 'ray') "
            "or m.startswith(('ablate.study', 'ablate.stats', 'ablate.report')))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    assert json.loads(out.stdout) == []

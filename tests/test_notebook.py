"""The README's Python example, executed as a real Jupyter notebook (nbclient, ipykernel).

The notebook's code cell is the README's block as written (string paths), with one
addition: `runtime=runtime`, so that it trains on the committed MNIST subset, and the
study file it names, `studies/dropout.toml`, is the shipped one with a validation split
the subset can hold. The test reads the executed notebook's outputs: the progress
display updated in place, the printed verdict, the report's HTML view, and a UserError
in the API's words.
"""

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

REPO = Path(__file__).resolve().parent.parent


def readme_example() -> str:
    """The ```python block of the README's 'From Python (notebooks)' section."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index("### From Python (notebooks)"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]


def _with_runtime(code: str) -> str:
    """The one change to the README's code: its run_study call trains on the subset."""
    calls = re.findall(r"ablate\.run_study\((.*)\)", code)
    assert len(calls) == 1, calls
    return code.replace(f"ablate.run_study({calls[0]})",
                        f"ablate.run_study({calls[0]}, runtime=runtime)")


SETUP = f"""\
import sys
sys.path.insert(0, {str(REPO)!r})
from tests.study_harness import SUBSET_RUNTIME as runtime  # the committed MNIST subset
"""

CHECKS = """\
assert "pairing.correlation" in frame.columns and "divergence.p_value" in frame.columns
assert not any(isinstance(v, dict) for v in frame.iloc[0]), frame.iloc[0]
assert isinstance(done.run_dir.parent.name, str) and done.run_dir.parent.name == "scratch"
print(repr(runs))
print(sorted(dir(ablate)))
try:
    ablate.run_study("studies/dropout.toml", out="scratch", seeds=0)
except ablate.UserError as exc:
    print("UserError:", exc)
runs
"""


def _outputs(cell: Any) -> list[Any]:
    return list(cell.get("outputs", []))


def _texts(cell: Any, mime: str) -> list[str]:
    """Every output of a cell in one MIME type (stream text as 'text/plain')."""
    out = []
    for o in _outputs(cell):
        if o["output_type"] == "stream" and mime == "text/plain":
            out.append(o["text"])
        elif mime in o.get("data", {}):
            out.append(o["data"][mime])
    return out


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    root = tmp_path_factory.mktemp("notebook")
    shipped = (REPO / "studies" / "dropout.toml").read_text(encoding="utf-8")
    assert "validation = 10000" in shipped
    (root / "studies").mkdir()
    (root / "studies" / "dropout.toml").write_text(
        shipped.replace("validation = 10000", "validation = 400"), encoding="utf-8")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(SETUP),
                nbformat.v4.new_code_cell(_with_runtime(readme_example())),
                nbformat.v4.new_code_cell(CHECKS)]
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(root)}})
    client.execute()
    nbformat.write(nb, root / "example.ipynb")  # kept for a look when a check fails
    return nb, root


def test_the_readme_example_runs_as_a_notebook(executed: tuple[Any, Path]) -> None:
    nb, root = executed
    for cell in nb.cells:
        assert not [o for o in _outputs(cell) if o["output_type"] == "error"]
        assert not [o for o in _outputs(cell) if o.get("name") == "stderr"], cell
    report = json.loads((root / "scratch" / "dropout" / "report.json").read_text())
    printed = "".join(_texts(nb.cells[1], "text/plain"))
    assert report["headline"] in printed
    for c in report["contrasts"]:
        assert f"{c['arm']} {c['decision']}" in printed


def test_the_report_shows_as_its_html_view(executed: tuple[Any, Path]) -> None:
    nb, root = executed
    result = [o for o in _outputs(nb.cells[1]) if o["output_type"] == "execute_result"]
    assert len(result) == 1  # `report`, the cell's last line
    html = result[0]["data"]["text/html"]
    report = json.loads((root / "scratch" / "dropout" / "report.json").read_text())
    assert report["headline"] in html
    for c in report["contrasts"]:
        assert c["decision"].upper() in html
    assert 'src="data:image/png;base64,' in html  # the forest plot, inline
    assert "report.html" in html
    assert result[0]["data"]["text/plain"].startswith("<Report dropout:")


def test_the_progress_is_one_display_updated_in_place(executed: tuple[Any, Path]) -> None:
    nb, _ = executed
    shown = [o for o in _outputs(nb.cells[1]) if o["output_type"] == "display_data"
             and "text/html" in o.get("data", {}) and "training 12 runs" in
             o["data"].get("text/plain", "")]
    assert len(shown) == 1  # updated in place: one output, not one per update
    final = shown[0]["data"]["text/plain"]
    assert re.search(r"(\d[\d,]*)/\1 steps 100%", final), final  # its last state
    assert shown[0]["data"]["text/html"].startswith("<pre")


def test_errors_and_reprs_speak_to_a_notebook_user(executed: tuple[Any, Path]) -> None:
    nb, _ = executed
    printed = "".join(_texts(nb.cells[2], "text/plain"))
    assert "UserError: seeds must be at least 1, got 0" in printed
    assert "--seeds" not in printed
    assert "<Runs: 12 runs of 'dropout': 12 done>" in printed
    assert "'run_study'" in printed and "'__version__'" in printed
    table = [o for o in _outputs(nb.cells[2]) if o["output_type"] == "execute_result"]
    assert table and table[0]["data"]["text/html"].count("<tr>") == 1 + 12


if __name__ == "__main__":  # print the notebook's code cell, as executed
    sys.stdout.write(_with_runtime(readme_example()))

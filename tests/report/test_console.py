"""Terminal tables: every number whole at 60, 80 and 200 columns (`ablate runs`, the
end-of-study summary), a compact default, --wide and --columns."""

import re

import pytest
from rich.console import Console

from ablate.design import parse_study
from ablate.errors import UserError
from ablate.report import RUN_COLUMNS, arm_summary, run_columns, runs_table
from ablate.store import Run

STUDY = """
name = "optimizer"
question = "Which optimizer?"
seeds = 3
[base]
layers = [64]
[factors.optimizer]
baseline = "sgd"
levels.sgd = {}
levels.adam = { optimizer = "adam" }
levels.nesterov_long = { optimizer = "nesterov" }
"""


def _runs() -> list[Run]:
    out = []
    for i, arm in enumerate(("optimizer=sgd", "optimizer=adam",
                             "optimizer=nesterov_long")):
        for seed in range(3):
            diverged = (i, seed) == (2, 1)
            out.append(Run(
                arm=arm, seed=seed, config_hash="h", status="diverged" if diverged else "done",
                device="cpu", seconds=123.456 + seed, epochs=20, best_epoch=17 - seed,
                train_loss=0.012345 + i, val_loss=0.0789 + seed / 1000,
                val_accuracy=None if diverged else 0.9712 + i / 100 + seed / 10_000,
                crossfit_val_loss=0.0801,
                crossfit_val_accuracy=None if diverged else 0.9701 + i / 100 + seed / 10_000,
                test_loss=0.0756, test_accuracy=0.9688 + i / 1000 + seed / 10_000,
                checkpoint=None, error=None))
    return out


def _text(renderable: object, width: int) -> str:
    console = Console(width=width, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(renderable)
    console.file.close()
    return console.export_text()


def _expect_whole(text: str, width: int, numbers: list[str]) -> None:
    assert "…" not in text and "..." not in text
    assert max(len(line) for line in text.splitlines()) <= width
    flat = " ".join(text.split())  # a block may wrap between words, never inside one
    for n in numbers:
        assert re.search(rf"(?<![\d.]){re.escape(n)}(?![\d])", flat), n


@pytest.mark.parametrize("width", [60, 80, 200])
@pytest.mark.parametrize("wide", [False, True])
def test_runs_show_every_number_whole(width: int, wide: bool) -> None:
    runs = _runs()
    study = parse_study(STUDY, "optimizer.toml")
    columns = run_columns(study, wide=wide)
    text = _text(runs_table(runs, columns, width), width)
    numbers = []
    for r in runs:
        numbers += [r.arm, f"{r.test_accuracy * 100:.2f}%"]  # type: ignore[operator]
        # The compact default shows the study's metric: the cross-fitted accuracy.
        shown = r.val_accuracy if wide else r.crossfit_val_accuracy
        if shown is not None:
            numbers.append(f"{shown * 100:.2f}%")
        if wide:
            numbers += [f"{r.seconds:.1f}", f"{r.train_loss:.4f}", f"{r.val_loss:.4f}"]
    _expect_whole(text, width, numbers)


def test_the_compact_default_fits_80_columns_as_a_table() -> None:
    study = parse_study(STUDY, "optimizer.toml")
    text = _text(runs_table(_runs(), run_columns(study), 80), 80)
    assert "┃ arm" in text and "epoch" in text  # a table, not blocks (headers may wrap)
    assert run_columns(study) == ("arm", "seed", "status", "best_epoch",
                                  "crossfit_val_accuracy", "test_accuracy")


def test_wide_at_60_columns_falls_back_to_one_run_per_block() -> None:
    text = _text(runs_table(_runs(), RUN_COLUMNS, 60), 60)
    assert "┃" not in text
    assert text.count("arm optimizer=adam  seed") == 3


def test_columns_are_chosen_by_name_and_misspellings_are_user_errors() -> None:
    assert run_columns(None, columns=["arm", "seconds"]) == ("arm", "seconds")
    with pytest.raises(UserError, match="did you mean 'seconds'"):
        run_columns(None, columns=["arm", "secnds"])


@pytest.mark.parametrize("width", [60, 80, 200])
def test_the_end_of_study_summary_shows_every_number_whole(width: int) -> None:
    study = parse_study(STUDY, "optimizer.toml")
    runs = _runs()
    text = _text(arm_summary(study, runs, width), width)
    # The study's metric, cross-fitted: sgd 97.01, 97.02, 97.03 -> 97.02% ± 0.01; adam
    # 98.02%; nesterov_long over its two finished seeds 99.01, 99.03 -> 99.02% ± 0.01.
    # Test accuracy of sgd: 96.88.. -> 96.89% ± 0.01.
    _expect_whole(text, width, ["97.02% ± 0.01", "96.89% ± 0.01", "98.02% ± 0.01",
                                "99.02% ± 0.01"])


@pytest.mark.parametrize("width", [60, 80, 120])
@pytest.mark.parametrize("name", ["optimizer", "dropout", "depth", "activation", "batchnorm",
                                  "init", "notebook"])
def test_the_plan_table_never_cuts_a_cell(width: int, name: str) -> None:
    """Every word of every cell (arm names, layer strings, optimizer settings such as
    `initial_accumulator=0.1`) is shown whole at 60, 80 and 120 columns; a cell may
    wrap only between words; a setting shared by every arm is said once, under it."""
    from pathlib import Path

    from ablate.design import load_study
    from ablate.engine import layers_text, optimizer_text
    from ablate.report import plan_table

    study = load_study(Path(__file__).parents[2] / "studies" / f"{name}.toml")
    text = _text(plan_table(study, {a.name: len(study.seeds) for a in study.arms}, width),
                 width)
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= width
    tokens = {t.removesuffix(";") for t in re.split(r"[\s│┃]+", text)}
    for arm in study.arms:
        for cell in (arm.name, layers_text(arm.config), optimizer_text(arm.config)):
            for word in cell.split():
                assert word in tokens, (word, text)
    if len({optimizer_text(a.config) for a in study.arms}) == 1 and len(study.arms) > 1:
        assert "every arm: " in text

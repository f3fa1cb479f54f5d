"""What a study shows while it trains: the live display at any width, each arm of a
packed cohort on its own, steps within an epoch, a smoothed ETA, and a log's lines."""

import io
import math
import re

import numpy as np
import pytest
from rich.console import Console

from ablate.design import Study, parse_study
from ablate.engine import Epoch
from ablate.metric import METRICS
from ablate.study import CohortTask, Plan, Replica, StudyProgress
from ablate.study._progress import ETA_WINDOW_S, Throughput, clock_text
from tests.study_harness import TINY_STUDY

DROPOUT = """
name = "dropout"
question = "q"
seeds = 10
[base]
layers = [512, 128, 64]
batch_norm = "after"
dropout = 0.5
optimizer = { name = "sgd", lr = 0.01 }
batch_size = 128
epochs = 20
[factors.dropout]
baseline = "on"
levels.on = {}
levels.off = { dropout = 0.0 }
"""

# Six arms in one cohort, with the long names a one-at-a-time study over two factors has.
MANY = """
name = "many"
question = "q"
seeds = 10
[base]
layers = [256]
optimizer = { name = "sgd", lr = 0.01 }
epochs = 20
[factors.initializer_choice]
baseline = "glorot_uniform"
levels.glorot_uniform = {}
levels.he_normal = { init = "he_normal" }
levels.lecun_normal = { init = "lecun_normal" }
[factors.activation_function]
baseline = "relu"
levels.relu = {}
levels.leaky_relu = { activation = "leaky_relu" }
levels.sigmoid = { activation = "sigmoid" }
"""


def _epoch(n: int, loss: np.ndarray, val: np.ndarray) -> Epoch:
    S = len(val)
    return Epoch(epoch=n, train_loss=loss, train_accuracy=np.full(S, 0.9),
                 val_loss=np.full(S, 0.4), val_accuracy=val,
                 val_loss_halves=np.full((S, 2), 0.4), val_accuracy_halves=np.full((S, 2), 0.9),
                 seconds=1.0, grad_norms=np.ones((S, 1)), weight_norms=np.ones((S, 1)))


def _cohort(study: Study) -> tuple[CohortTask, Plan]:
    task = CohortTask(tuple(Replica(a.name, s, a.config) for a in study.arms
                            for s in study.seeds), METRICS["val_accuracy"])
    return task, Plan((task,), 0, 50_000, {})


def _training(text: str, *, console: Console | None = None, live: bool = True
              ) -> tuple[StudyProgress, CohortTask, Epoch, list[float]]:
    """A study 2 epochs and 140 steps in, reported as the engine does (every 20 steps
    and the rest at an epoch's end), 1.3 s per 20 steps; epoch numbers drawn from a
    seeded generator."""
    task, plan = _cohort(parse_study(text, "s.toml"))
    now = [1000.0]
    shown = StudyProgress(plan, console or Console(file=io.StringIO()),
                          clock=lambda: now[0], live=live)
    shown.started(task)
    rng = np.random.default_rng(7)
    S = len(task.replicas)
    per_epoch = _per_epoch(plan, task)
    record = _epoch(1, rng.uniform(0.3, 0.4, S), rng.uniform(0.9, 0.95, S))
    for epoch in (1, 2, 3):
        for i in range(0, per_epoch if epoch < 3 else 140, 20):
            now[0] += 1.3
            shown.advanced(task, min(20, per_epoch - i))
        if epoch < 3:
            record = _epoch(epoch, rng.uniform(0.2, 0.3, S), rng.uniform(0.95, 0.98, S))
            shown.epoch(task, record)
    return shown, task, record, now


def _per_epoch(plan: Plan, task: CohortTask) -> int:
    return plan.steps(task) // task.epochs


NUMBER = re.compile(r"\d[\d,.:/%-]*")


def _numbers(text: str) -> set[str]:
    return {m.rstrip(",.;:)-") for m in NUMBER.findall(text)}


def _whole(lines: list[str], reference: set[str]) -> bool:
    """Every number in `lines` is one the widest rendering shows whole."""
    return all(n in reference for line in lines for n in _numbers(line))


def _rendered(shown: StudyProgress, width: int) -> list[str]:
    """The display as rich draws it in a terminal of `width` columns (escapes removed)."""
    out = io.StringIO()
    Console(file=out, width=width, force_terminal=True, color_system=None).print(shown)
    return out.getvalue().splitlines()


def _arm_numbers(task: CohortTask, record: Epoch, arm: str) -> tuple[str, str, str, str]:
    """An arm's numbers computed here with NumPy: loss mean and range, val mean and range."""
    idx = [s for s, r in enumerate(task.replicas) if r.arm == arm]
    loss, val = record.train_loss[idx], record.val_accuracy[idx] * 100
    return (f"{loss.mean():.3f}", f"({loss.min():.3f}-{loss.max():.3f})",
            f"{val.mean():.2f}%", f"({val.min():.2f}-{val.max():.2f})")


@pytest.mark.parametrize("text", [DROPOUT, MANY], ids=["dropout", "six-arms"])
def test_the_live_display_is_whole_at_60_80_and_120_columns(text: str) -> None:
    shown, task, record, now = _training(text)
    reference = _numbers("\n".join(shown.lines(10_000)))
    eta = shown.eta()
    assert eta is not None
    for width in (60, 80, 120):
        lines = _rendered(shown, width)
        assert lines == shown.lines(width)  # what rich draws is the layout, unchanged
        assert all(len(line) <= width for line in lines), width
        assert not any("…" in line for line in lines)
        assert _whole(lines, reference), (width, lines)
        text_ = "\n".join(lines)
        # The numbers that matter are there at every width: the study's steps, its
        # ETA, the cohort's epoch and step within it, and each arm's means.
        assert f"{shown.done:,}/{shown.total:,}" in text_
        assert f"ETA {clock_text(eta)}" in text_
        assert f"epoch 3/20, step 140/{_per_epoch(shown.plan, task)}" in text_
        for arm in task.arms:
            loss, _, val, _ = _arm_numbers(task, record, arm)
            arm_line = next(line for line in lines if line.strip().startswith(arm))
            assert f"loss {loss}" in arm_line and f"val {val}" in arm_line, arm_line
    # At 80 columns the dropout study shows each arm's ranges too.
    if text is DROPOUT:
        lines = shown.lines(80)
        for arm in task.arms:
            loss, loss_range, val, val_range = _arm_numbers(task, record, arm)
            assert any(f"loss {loss} {loss_range}" in line and f"val {val} {val_range}" in line
                       for line in lines), (arm, lines)


def test_the_wholeness_check_catches_a_cut_number() -> None:
    """The check above fails on a display that cuts a number, as rich's table did."""
    shown, *_ = _training(DROPOUT)
    reference = _numbers("\n".join(shown.lines(10_000)))
    line = next(line for line in shown.lines(10_000) if "val " in line)
    cut = line[:line.index("val ") + 8]  # 'val 96.6' of 'val 96.63%'
    assert not _whole([cut], reference)
    at = line.index("val ") + 6  # inside the number: 'val 96' / '.63% ...'
    assert not _whole([line[:at], line[at:]], reference)  # a number split over two lines


def test_each_arm_of_a_packed_cohort_has_its_own_mean_and_range() -> None:
    shown, task, record, _ = _training(DROPOUT)
    assert len(task.arms) == 2 and len(task.replicas) == 20  # one cohort, two arms
    lines = shown.lines(120)
    for arm, seeds in task.arms.items():
        loss, loss_range, val, val_range = _arm_numbers(task, record, arm)
        assert f"  {arm} (seeds {seeds[0]}-{seeds[-1]}): loss {loss} {loss_range}  " \
               f"val {val} {val_range}" in lines
    # The arms differ, so pooling them (as the old line did) would show other numbers.
    pooled = record.val_accuracy.mean() * 100
    assert all(f"{pooled:.2f}%" not in line for line in lines[2:])


def test_steps_within_an_epoch_move_the_display_before_its_first_epoch_ends() -> None:
    task, plan = _cohort(parse_study(DROPOUT, "s.toml"))
    now = [0.0]
    shown = StudyProgress(plan, Console(file=io.StringIO()), clock=lambda: now[0], live=True)
    shown.started(task)
    seen = []
    for _ in range(5):
        now[0] += 1.3
        shown.advanced(task, 20)
        seen.append(shown.lines(80)[1])
    per_epoch = _per_epoch(plan, task)
    assert seen[0].endswith(f"epoch 1/20, step 20/{per_epoch}")
    assert seen[-1].endswith(f"epoch 1/20, step 100/{per_epoch}")
    assert all("starting" not in s for s in seen)
    assert "numbers after epoch 1" in shown.lines(80)[2]


def _eta_trace(seconds_per_20: np.ndarray, total: int
               ) -> tuple[list[float], list[float], list[float]]:
    """Feed 20-step events taking `seconds_per_20[i]` each; return the times, the ETA
    shown after each event, and the true time left (the rest of the trace)."""
    task, plan = _cohort(parse_study(DROPOUT, "s.toml"))
    now = [0.0]
    shown = StudyProgress(plan, Console(file=io.StringIO()), clock=lambda: now[0], live=True)
    shown.started(task)
    shown.total = total
    ends = np.cumsum(seconds_per_20)
    times, etas, truth = [], [], []
    for t in ends:
        now[0] = float(t)
        shown.advanced(task, 20)
        eta = shown.eta()
        if eta is not None:
            times.append(float(t))
            etas.append(eta)
            truth.append(float(ends[-1] - t))
    return times, etas, truth


def test_the_eta_is_smoothed_over_recent_throughput() -> None:
    """On a noisy machine (each 20 steps take 1.3 s x lognormal(0, 0.5)) the ETA stays
    near the true time left (7% off typically, 25% at worst), where one measured
    from the last 20 steps only is off by 100% or more."""
    rng = np.random.default_rng(21)
    n = 2000
    durations = 1.3 * rng.lognormal(0.0, 0.5, n)
    times, etas, truth = _eta_trace(durations, 20 * n)
    middle = [(e, t) for tm, e, t in zip(times, etas, truth, strict=True)
              if ETA_WINDOW_S < tm < times[-1] - 600]
    errors = [abs(e - t) / t for e, t in middle]
    assert np.median(errors) < 0.10 and max(errors) < 0.25, (np.median(errors), max(errors))
    # The ETA from the last 20 steps alone, over the same stretch, is off by 100% or more.
    left = np.cumsum(durations[::-1])[::-1]  # true time left before each interval
    naive = [abs((20 * n - 20 * (i + 1)) / (20 / d) - left[i + 1]) / left[i + 1]
             for i, d in enumerate(durations[:-1])
             if ETA_WINDOW_S < float(np.sum(durations[:i + 1])) < times[-1] - 600]
    assert max(naive) > 1.0, max(naive)


def test_the_eta_follows_a_machine_that_gets_busy() -> None:
    """The rate halves at t = 600 s: within the window (plus the sampling noise) the
    ETA tracks the new truth; before the change it was the old one."""
    durations = np.concatenate([np.full(460, 1.3), np.full(460, 2.6)])
    times, etas, truth = _eta_trace(durations, 20 * 920)
    at = {round(t): (e, tr) for t, e, tr in zip(times, etas, truth, strict=True)}
    before = min(at, key=lambda t: abs(t - 590))
    after = min(at, key=lambda t: abs(t - (598 + ETA_WINDOW_S + 10)))
    e, tr = at[before]
    assert e < 0.6 * tr  # still the old, faster rate: the change had not happened
    e, tr = at[after]
    assert abs(e - tr) / tr < 0.05


def test_the_eta_counts_down_between_events_and_grows_in_a_stall() -> None:
    t = Throughput(window=120, least=5, stall=30)
    for i in range(100):
        t.add(1.3 * i, 20 * i)
    last = 1.3 * 99
    eta = t.eta(1000, last)
    assert eta is not None and math.isclose(eta, 1000 / (20 / 1.3), rel_tol=1e-9)
    assert math.isclose(t.eta(1000, last + 2.0) or 0, eta - 2.0, rel_tol=1e-9)
    stalled = t.eta(1000, last + 90)  # nothing for 90 s: the rate over the window falls
    assert stalled is not None and stalled > eta


def test_a_retried_cohort_takes_back_its_steps_without_swinging_the_eta() -> None:
    shown, task, _, now = _training(DROPOUT)
    before = shown.eta()
    done = shown.done
    shown.started(task)  # the cohort failed on a worker and starts over
    assert shown.done == done - (2 * _per_epoch(shown.plan, task) + 140)
    after = shown.eta()
    assert before is not None and after is not None
    assert after > before  # more steps to go at the same rate, never a jump to zero


def test_a_log_gets_a_line_per_cohort_epoch_throttled_and_no_live_display() -> None:
    arm_study = parse_study(TINY_STUDY, "tiny.toml")
    arm = arm_study.arms[0]
    task = CohortTask(tuple(Replica(arm.name, s, arm.config) for s in range(3)),
                      METRICS["val_accuracy"])
    out = io.StringIO()
    console = Console(file=out, width=80, force_terminal=False)
    now = [100.0]
    with StudyProgress(Plan((task,), 0, 1600, {}), console, log_every=30,
                       clock=lambda: now[0]) as shown:
        assert not shown.live
        shown.started(task)
        for n, t in enumerate((10.0, 25.0, 131.0, 140.0, 170.0), start=1):
            now[0] = 100 + t
            shown.advanced(task, 16)
            shown.epoch(task, _epoch(n, np.full(3, 0.5 / n), np.array([0.95, 0.96, 0.97])))
    lines = out.getvalue().splitlines()
    assert "\x1b" not in out.getvalue()  # no escape codes, nothing updated in place
    assert lines[0] == "  cohort 1/1 started: 3 runs (dropout=on, seeds 0-2)"
    # Printed at 131 s (>= 30 s after the start) and at 170 s (30 s after 131 s) only,
    # one line each however wide (a log is read, not watched).
    assert [line.split(":")[0] for line in lines[1:]] == ["  cohort 1/1 epoch 3/6",
                                                          "  cohort 1/1 epoch 5/6"]
    assert "dropout=on loss 0.167 (0.167-0.167) val 96.00% (95.00-97.00)" in lines[1]
    assert "[study " in lines[1] and "ETA " in lines[1]

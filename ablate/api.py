"""`ablate study`: plan, train what is missing, record, summarise, report."""

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from ablate import data
from ablate.engine import provenance, resolve_device
from ablate.errors import UserError
from ablate.report import arm_summary, write_report
from ablate.store import DB_NAME, Store
from ablate.study import (
    InProcessExecutor,
    Plan,
    Study,
    check_subset,
    estimate_seconds,
    execute,
    load_data,
    load_study,
    plan_study,
    reset_run_dir,
)


@dataclass(frozen=True)
class StudyOptions:
    out: Path = Path("runs")  # a study writes to <out>/<study name>/
    seeds: int | None = None  # seeds 0..N-1 instead of the file's seeds
    epochs: int | None = None  # epochs instead of the file's
    subset: int | None = None  # first N training images of a fixed stratified order
    device: str = "auto"
    dry_run: bool = False
    fresh: bool = False
    progress: bool = True
    report: bool = True  # write report.{md,html,json} at the end


@dataclass(frozen=True)
class Runtime:
    """What a study takes from the machine besides its options; tests pass their own."""

    load_mnist: Callable[..., data.Mnist] = field(default=data.load)  # (progress=) -> Mnist


def run_study(path: Path, options: StudyOptions, console: Console,
              runtime: Runtime = Runtime()) -> int:
    """Run a study file to the end; returns the exit code (0, or 1 if runs failed)."""
    study = load_study(path).with_overrides(seeds=options.seeds, epochs=options.epochs)
    device = resolve_device(options.device)
    run_dir = options.out / study.name
    if options.dry_run and not (run_dir / DB_NAME).exists():
        with tempfile.TemporaryDirectory() as scratch:  # a dry run leaves nothing behind
            return _with_store(Path(scratch), study, options, device, console, path, runtime)
    if options.fresh and not options.dry_run:
        reset_run_dir(run_dir)
    return _with_store(run_dir, study, options, device, console, path, runtime)


def _with_store(run_dir: Path, study: Study, options: StudyOptions, device: torch.device,
                console: Console, path: Path, runtime: Runtime) -> int:
    store = Store(run_dir)
    try:
        return _run(study, store, options, device, console, path, runtime)
    finally:
        store.close()


def _run(study: Study, store: Store, options: StudyOptions, device: torch.device,
         console: Console, path: Path, runtime: Runtime) -> int:
    plan = plan_study(study, store, options.subset, device, dry_run=options.dry_run)
    console.print(f"[bold]{study.name}[/]: {study.question}")
    console.print(_plan_table(study, plan))
    if options.dry_run:
        est = estimate_seconds(plan, device)
        cohorts = f"{len(plan.cohorts)} cohort{'' if len(plan.cohorts) == 1 else 's'}"
        console.print(f"{plan.runs} runs to train in {cohorts} "
                      f"({plan.skipped} already done) on {device}; estimated {est / 60:.1f} min. "
                      "Dry run: nothing trained.")
        return 0
    store.set_meta(study_file=str(path), study_source=Path(path).read_text(encoding="utf-8"),
                   name=study.name, question=study.question, metric=study.metric.name,
                   rope=study.rope, validation=study.validation, subset=options.subset,
                   seeds=list(study.seeds), arms=[a.name for a in study.arms],
                   baseline=study.baseline.name, device=str(device),
                   provenance=provenance(device))
    failed = 0
    if plan.cohorts:
        check_subset(study, options.subset)
        mnist = runtime.load_mnist(progress=options.progress)
        device_data, checksums = load_data(study, options.subset, device, mnist)
        store.set_meta(data_sha256=checksums)
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("steps"), TimeElapsedColumn(), TextColumn("ETA"),
                      TimeRemainingColumn(), console=console,
                      disable=not options.progress) as bar:
            task = bar.add_task(f"training {plan.runs} runs", total=plan.total_steps)
            failed = execute(
                study, store, plan, InProcessExecutor(device_data), device, checksums,
                on_step=lambda k: bar.advance(task, k),
                on_cohort=lambda t, r: console.print(
                    "  " + ", ".join(f"{arm}: {len(seeds)} seeds" for arm, seeds in t.arms.items())
                    + f" in {r.seconds:.0f} s"))
    else:
        console.print(f"Nothing to do: all {plan.skipped} runs are finished with this config.")
    console.print(arm_summary(study, store.runs()))
    console.print(f"Runs stored in {store.dir}/")
    if options.report and any(r.status == "done" for r in store.runs()):
        try:
            for written in write_report(store.dir):
                console.print(f"wrote {written}")
        except UserError as exc:  # e.g. every seed of the baseline diverged
            console.print(f"[yellow]no report[/]: {exc}")
    if failed:
        console.print(f"[red]{failed} runs failed[/]; see `ablate runs {store.dir}`; "
                      "rerun the same command to retry them.")
    return 1 if failed else 0


def _plan_table(study: Study, plan: Plan) -> Table:
    todo: dict[str, int] = {}
    for t in plan.cohorts:
        for replica in t.replicas:
            todo[replica.arm] = todo.get(replica.arm, 0) + 1
    table = Table(title=f"plan: {len(study.arms)} arms x {len(study.seeds)} seeds")
    for col in ("arm", "layers", "optimizer", "epochs", "to run"):
        table.add_column(col)
    for arm in study.arms:
        c = arm.config
        layers = "-".join(f"{lay.units}{'BN' if lay.batch_norm != 'off' else ''}"
                          f"{'D' if lay.dropout else ''}" for lay in c.layers)
        table.add_row(arm.name, layers, f"{c.optimizer.name} lr={c.optimizer.lr:g}",
                      str(c.epochs), str(todo.get(arm.name, 0)))
    return table

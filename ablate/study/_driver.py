"""How a study runs: the driver of `ablate study` (and `ablate.run_study`).

It takes the run directory's lease (one driver per directory), checks that the directory
holds no runs of another configuration (its name and that check: `_directory`), writes
the study record, plans the runs still to do (a cohort interrupted earlier continues
from its saved state, `_resume`), hands their cohorts to an executor (in
process, or Ray) and records each result as it lands (`_execute`). A sequential study
trains in rounds: after each, the driver asks the analysis
(`ablate.analysis.sequential_state`, the code the report's verdicts come from) whether
every verdict is settled, and stops or adds seeds. At the end it prints the per-arm
summary, writes the report and prints each verdict (`_summary`; a dry run prints what
its seeds can decide).
"""

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from rich.console import Console, RenderableType

from ablate import data
from ablate.analysis import analyse_run_dir, sequential_state
from ablate.design import AnatomyPlan, Study, StudyRecord, load_study
from ablate.engine import pinned_threads, provenance, resolve_device
from ablate.errors import UserError
from ablate.extras import need
from ablate.faults import reached
from ablate.options import StudyOptions
from ablate.report import anatomy_lines, arm_summary, plan_table, write_report_files
from ablate.store import ANATOMY_FILE, DB_NAME, Store, describe
from ablate.study._anatomy import (
    anatomy_arm,
    anatomy_configs,
    train_anatomy,
    write_anatomy,
)
from ablate.study._directory import check_one_config, run_dir
from ablate.study._execute import (
    CohortOutcome,
    Executed,
    Executor,
    InProcessExecutor,
    check_subset,
    execute,
    load_data,
)
from ablate.study._plan import (
    CohortTask,
    Plan,
    cohorts_per_gpu,
    data_settings,
    estimate_seconds,
    plan_study,
    queue_plan,
)
from ablate.study._progress import StudyProgress
from ablate.study._resume import CohortStates, resuming_text
from ablate.study._summary import print_outcome, print_reach

__all__ = ["Runtime", "StudyRun", "check_targets", "run_study", "study_device"]


@dataclass(frozen=True)
class Runtime:
    """What a study takes from the machine besides its options; tests pass their own."""

    load_mnist: Callable[..., data.Mnist] = field(default=data.load)  # (progress=, log=)
    clock: Callable[[], float] = field(default=time.time)  # unix time, for the store


@dataclass(frozen=True)
class StudyRun:
    """What `run_study` did."""

    run_dir: Path  # where the runs are (for a dry run of a new study: where they would be)
    planned: int  # runs in the plan (arms x seeds)
    trained: int  # runs trained now
    failed: int  # runs that failed now (rerun to retry them)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


def run_study(path: Path | str, options: StudyOptions, console: Console,
              runtime: Runtime) -> StudyRun:
    """Run a study file to the end (module docstring). Raises `UserError` for mistakes the
    user can fix (bad file, bad option, a directory in use, a tracker to log to whose
    package is not installed)."""
    path = Path(path)
    check_targets(options.log)  # before any training
    study = load_study(path).with_overrides(seeds=options.seeds, epochs=options.epochs,
                                            threads=options.threads,
                                            until_decided=options.until_decided,
                                            max_seeds=options.max_seeds)
    device = study_device(options)
    target = run_dir(study.name, options)
    if options.dry_run and not (target / DB_NAME).exists():
        with tempfile.TemporaryDirectory() as scratch:  # a dry run leaves nothing behind
            return _with_store(Path(scratch), study, options, device, console, path, runtime)
    return _with_store(target, study, options, device, console, path, runtime)


def check_targets(log: tuple[str, ...]) -> None:
    """Each `--log` target names a tracker whose package is installed (a `UserError`
    naming the install command otherwise), before anything trains."""
    from ablate.publish import parse_target

    for text in log:
        t = parse_target(text)
        need(t.tracker, t.tracker, f"--log {t.tracker}")


def study_device(options: StudyOptions) -> torch.device:
    """The device the study's cohorts train on. In process: `--device` resolved here. On
    Ray the workers train and the driver may have no GPU of its own: `--device auto`
    means a GPU when cohorts declare one (`--gpus-per-cohort` > 0), else the CPU, and a
    GPU study must declare one (Ray shows a task no GPU it did not ask for). Its type is
    part of every run's config hash."""
    if options.gpus_per_cohort < 0:
        raise UserError(f"--gpus-per-cohort must be 0 or more, got {options.gpus_per_cohort:g}")
    if options.executor == "in-process":
        return resolve_device(options.device)
    if options.device == "auto":
        return torch.device("cuda" if options.gpus_per_cohort > 0 else "cpu")
    try:
        device = torch.device(options.device)
    except RuntimeError:
        raise UserError(f"--device {options.device!r} is not a device; use auto, cpu, cuda "
                        "or cuda:N") from None
    if device.type == "cuda" and options.gpus_per_cohort == 0:
        raise UserError(f"--device {options.device} with --executor ray needs "
                        "--gpus-per-cohort > 0: Ray shows a task no GPU it did not declare "
                        "(e.g. --gpus-per-cohort 1, or 0.5 for two cohorts per GPU)")
    return device


def _with_store(run_dir: Path, study: Study, options: StudyOptions, device: torch.device,
                console: Console, path: Path, runtime: Runtime) -> StudyRun:
    store = Store(run_dir, clock=runtime.clock)
    try:
        if not options.dry_run:  # a dry run only reads
            store.acquire(wait=options.wait, on_wait=lambda h: console.print(
                f"waiting: {run_dir} is in use by another `ablate study` "
                f"({describe(h, runtime.clock())})"))
            if options.fresh:
                store.reset()
                (run_dir / ANATOMY_FILE).unlink(missing_ok=True)  # it was of those runs
        return _run(study, store, options, device, console, path, runtime)
    finally:
        store.close()


def _run(study: Study, store: Store, options: StudyOptions, device: torch.device,
         console: Console, path: Path, runtime: Runtime) -> StudyRun:
    """Train the plan; a sequential study trains in rounds, asking the analysis after
    each whether every verdict is settled (`sequential_state`)."""
    if not options.fresh:  # one configuration per run directory (--fresh replaces them)
        check_one_config(study, store, data_settings(study, options.subset, device))
    console.print(f"[bold]{study.name}[/]: {study.question}")
    if store.removed:
        console.print(f"removed {len(store.removed)} temporary file(s) that a killed writer "
                      f"left in {store.dir}", highlight=False)
    wanted = options.anatomy or study.anatomy is not None
    if not wanted and (options.anatomy_arm is not None or options.anatomy_seeds is not None):
        raise UserError("--arm and --anatomy-seeds go with --anatomy (or anatomy in the "
                        "study file)", api="anatomy_arm and anatomy_seeds go with "
                        "anatomy=True (or anatomy in the study file)")
    dissect = _Dissection.of(study, options) if wanted else None
    if study.sequential is not None:
        looks = ", ".join(map(str, study.sequential.looks()))
        console.print(f"sequential: looks at {looks} seeds per "
                      f"arm; stops at the first look that settles every verdict")
    trainer = _Trainer(store, options, device, console, path, runtime)
    planned = trained = failed = 0
    while True:
        plan = plan_study(study, store, options.subset, device, per_gpu=_per_gpu(options))
        plan = CohortStates(store.dir).attach(plan, lambda line: console.print(
            line, markup=False, highlight=False), tidy=not options.dry_run)
        console.print(_plan_table(study, plan, console.width))
        planned = plan.runs + plan.skipped
        if options.dry_run:
            est = estimate_seconds(plan, device)
            more = (f" (a sequential study may go on to {study.sequential.max} seeds per arm)"
                    if study.sequential is not None else "")
            when = (f"estimated {est / 60:.1f} min{more}" if est is not None else
                    f"no time estimate: this process sees no {device.type} device to "
                    f"measure (the workers train){more}")
            console.print(f"{plan.runs} runs to train in {_cohorts(plan)}"
                          f"{resuming_text(plan)} "
                          f"({plan.skipped} already done) on {device}, into "
                          f"{run_dir(study.name, options)}/; {when}. Dry run: nothing "
                          "trained.", highlight=False)
            print_reach(console, study)
            if dissect is not None:
                console.print(dissect.plan_line(device))
            return StudyRun(run_dir(study.name, options), planned, 0, 0)
        queue_plan(store, plan)
        done = trainer.round(study, plan)
        trained, failed = trained + done.trained, failed + done.failed
        if study.sequential is None or failed:  # a failed run stops the rounds: rerun
            break
        state = sequential_state(store.dir)
        if state is None or state.stop or state.next_seeds is None:
            if state is not None:
                console.print(f"[bold]sequential: stopped at {len(study.seeds)} seeds per "
                              f"arm[/]: {state.why}")
            break
        console.print(f"sequential: at {len(study.seeds)} seeds per arm, {state.why}; "
                      f"adding seeds up to {state.next_seeds}")
        study = replace(study, seeds=tuple(range(state.next_seeds)))
    runs = store.runs()
    console.print(arm_summary(study, runs, console.width))
    console.print(f"Runs stored in {store.dir}/")
    if dissect is not None and not failed:  # before the report, which shows it
        dissect.run(study, store, options, device, console, runtime)
    if options.report and any(r.status == "done" for r in runs):
        try:
            analysis = analyse_run_dir(store.dir)
            print_outcome(console, analysis, store.dir, write_report_files(analysis, store.dir))
        except UserError as exc:  # e.g. every seed of the baseline diverged
            console.print(f"[yellow]no report[/]: {exc}")
    if options.log:
        _publish(store.dir, options, console)
    if failed:
        console.print(f"[red]{failed} runs failed[/]; see `ablate runs {store.dir}`; "
                      "rerun the same command to retry them.")
    return StudyRun(store.dir, planned, trained, failed)


class _Trainer:
    """Trains a study's plans round by round, loading MNIST and the executor once."""

    def __init__(self, store: Store, options: StudyOptions, device: torch.device,
                 console: Console, path: Path, runtime: Runtime) -> None:
        self.store, self.options, self.device, self.console = store, options, device, console
        self.path, self.runtime = path, runtime
        self.source = path.read_text(encoding="utf-8")  # as parsed, whatever happens to it
        self.executor: Executor | None = None
        self.checksums: dict[str, str] | None = None
        earlier = store.record_text()
        self.data_sha256 = StudyRecord.from_json(earlier).data_sha256 if earlier else None

    def _say(self, line: str) -> None:
        self.console.print(line, highlight=False, markup=False)

    def _record(self, study: Study) -> None:
        """The study as trained so far (a sequential study's seeds grow by round); its
        provenance names the thread count its arms train at (when they share one)."""
        threads = {a.run_config.threads for a in study.arms}
        with pinned_threads(threads.pop() if len(threads) == 1 else None):
            machine = provenance(self.device)
        self.store.write_record(StudyRecord(
            study=study, study_file=str(self.path),
            source=self.source, subset=self.options.subset,
            device=str(self.device), provenance=machine,
            data_sha256=self.checksums or self.data_sha256).to_json())

    def round(self, study: Study, plan: Plan) -> Executed:
        self._record(study)
        if not plan.cohorts:
            self.console.print(f"Nothing to do: all {plan.skipped} runs are finished with "
                               "this config.")
            return Executed(0, 0)
        options = self.options
        if self.executor is None:
            check_subset(study, options.subset)
            mnist = self.runtime.load_mnist(progress=self.console.is_terminal, log=self._say)
            if mnist.origin:
                self._say(f"MNIST: {mnist.origin}")
            self.checksums = mnist.checksums()
            self._record(study)
            self.executor = _executor(options, study, self.device, mnist, self.checksums)
        assert self.checksums is not None
        self.console.print(f"training {plan.runs} runs in {_cohorts(plan)}{resuming_text(plan)}"
                           + (f" on Ray ({options.ray_address or 'local'})"
                              if options.executor == "ray" else f" on {self.device}"))
        with StudyProgress(plan, self.console) as shown:
            return execute(study, self.store, plan, self.executor, self.checksums, shown,
                           on_cohort=lambda task, outcome: _recorded(shown, task, outcome))


def _recorded(shown: StudyProgress, task: CohortTask, outcome: CohortOutcome) -> None:
    """A cohort's runs are stored: show it (and let a crash test stop here: `faults`)."""
    shown.finished(task, outcome)
    reached("cohort-recorded")


@dataclass(frozen=True)
class _Dissection:
    """`--anatomy`: one arm's extra runs, one random stream varied at a time
    (`study/_anatomy.py`), trained in process after the study, stored in anatomy.json."""

    arm: str
    seeds: int  # runs per stream
    runs: int  # all extra runs (one cohort)

    @staticmethod
    def of(study: Study, options: StudyOptions) -> "_Dissection":
        """From the options, else the study key `anatomy` (checked before training)."""
        plan = study.anatomy or AnatomyPlan()
        arm = anatomy_arm(study, options.anatomy_arm or plan.arm)
        seeds = options.anatomy_seeds or plan.seeds or len(study.seeds)
        if seeds < 2:
            raise UserError(f"--anatomy-seeds must be at least 2 (a variance needs two "
                            f"runs), got {seeds}",
                            api=f"anatomy_seeds must be at least 2, got {seeds}")
        config = next(a for a in study.arms if a.name == arm).run_config
        return _Dissection(arm, seeds, len(anatomy_configs(config, seeds)))

    def plan_line(self, device: torch.device) -> str:
        return (f"anatomy: {self.runs} extra runs of {self.arm} ({self.seeds} per random "
                f"stream varied alone, and all varied) in one cohort on {device}")

    def run(self, study: Study, store: Store, options: StudyOptions, device: torch.device,
            console: Console, runtime: Runtime) -> None:
        def say(line: str) -> None:
            console.print(line, highlight=False, markup=False)

        mnist = runtime.load_mnist(progress=console.is_terminal, log=say)
        data = load_data(study, options.subset, device, mnist)
        say(f"training {self.plan_line(device).removeprefix('anatomy: ')}")
        epochs = next(a for a in study.arms if a.name == self.arm).run_config.epochs
        result = train_anatomy(study, self.arm, self.seeds, data, on_epoch=lambda e: say(
            f"anatomy: epoch {e.epoch}/{epochs} ({e.seconds:.1f} s)"))
        path = write_anatomy(store.dir, result)
        for line in anatomy_lines(result.to_dict()):
            say(line)
        say(f"Anatomy stored in {path} (not part of any verdict).")


def _publish(run_dir: Path, options: StudyOptions, console: Console) -> None:
    """Log the study to its trackers; one that fails is a warning: the store holds
    everything, and `ablate publish` can log it later."""
    from ablate.publish import parse_target, publish

    targets = [parse_target(t) for t in options.log]
    try:
        publish(run_dir, targets, say=lambda line: console.print(f"logged to {line}"))
    except UserError as exc:
        again = " ".join(f"--to {t}" for t in targets)
        console.print(f"[yellow]warning[/]: not logged: {exc}. Nothing is lost: every run is "
                      f"stored in {run_dir}/; `ablate publish {run_dir} {again}` logs it "
                      "when the tracker is back.", markup=True, highlight=False)


def _per_gpu(options: StudyOptions) -> int:
    """Cohorts that train on one GPU at once: several on Ray with fractional GPUs."""
    return cohorts_per_gpu(options.gpus_per_cohort) if options.executor == "ray" else 1


def _cohorts(plan: Plan) -> str:
    return f"{len(plan.cohorts)} cohort{'' if len(plan.cohorts) == 1 else 's'}"


def _executor(options: StudyOptions, study: Study, device: torch.device, mnist: data.Mnist,
              checksums: dict[str, str]) -> Executor:
    if options.executor == "ray":
        from ablate.study._ray import RayExecutor, RayOptions

        return RayExecutor(mnist, checksums, validation=study.validation, subset=options.subset,
                           device=device.type, options=RayOptions(  # Ray picks the GPU
                               options.ray_address, options.cpus_per_cohort,
                               options.gpus_per_cohort))
    return InProcessExecutor(load_data(study, options.subset, device, mnist))


def _plan_table(study: Study, plan: Plan, width: int) -> RenderableType:
    todo: dict[str, int] = {}
    for t in plan.cohorts:
        for replica in t.replicas:
            todo[replica.arm] = todo.get(replica.arm, 0) + 1
    return plan_table(study, todo, width)

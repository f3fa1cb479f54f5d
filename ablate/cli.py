"""The `ablate` command line: thin wrappers, one library call per command.

User mistakes print one line and exit 2; runtime failures exit 1.
"""

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console
from typer.core import TyperCommand, TyperGroup

from ablate.errors import Interrupted, UserError, cli_words
from ablate.options import StudyOptions

__all__ = ["app"]



def _without_bool_types(params: list[Any]) -> list[Any]:
    """A flag takes no value, so its help shows no type (Typer would show `<bool>`)."""
    for p in params:
        if getattr(p, "is_bool_flag", False):
            p.metavar = ""
    return params


class _Command(TyperCommand):
    def get_params(self, ctx: Any) -> list[Any]:  # a click Context
        return _without_bool_types(super().get_params(ctx))


class _Group(TyperGroup):
    def get_params(self, ctx: Any) -> list[Any]:  # a click Context
        return _without_bool_types(super().get_params(ctx))


app = typer.Typer(
    help="Controlled multi-seed ablation studies of MLPs on MNIST, with a statistical verdict.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False, cls=_Group)
data_app = typer.Typer(help="The MNIST data set.", no_args_is_help=True, cls=_Group)
app.add_typer(data_app, name="data")
console = Console()
_STUDY = StudyOptions()  # the defaults, stated once there
err = Console(stderr=True)


def _show_version(show: bool) -> None:
    if show:
        from ablate import __version__

        console.print(f"ablate {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option(
        "--version", callback=_show_version, is_eager=True,
        help="Print the version and exit.")] = False,
) -> None:
    """Controlled multi-seed ablation studies of MLPs on MNIST, with a statistical verdict."""


def _guard(fn: Callable[[], Any]) -> Any:
    """Run a command body: a UserError is one line and exit 2; Ctrl-C exits 130."""
    try:
        with cli_words():
            return fn()
    except UserError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    except Interrupted as exc:  # during training: it says what was kept
        err.print(f"{exc}.", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(130) from None
    except KeyboardInterrupt:
        err.print("interrupted: finished runs are stored; rerun the same command to go on.")
        raise typer.Exit(130) from None


@data_app.command("fetch", cls=_Command)
def data_fetch(
    from_path: Annotated[Path | None, typer.Option(
        "--from", help="Read MNIST from here instead of downloading: a folder with the four "
        "IDX .gz files, a Keras mnist.npz, or mnist_train.csv/mnist_test.csv.")] = None,
) -> None:
    """Put MNIST into the cache (ABLATE_DATA_DIR, else ~/.cache/ablate), checksummed."""
    from ablate.data import fetch, origin
    path = _guard(lambda: fetch(from_path, log=lambda m: err.print(m)))
    console.print(f"MNIST ready: {origin(path)}", highlight=False)


@app.command(cls=_Command)
def study(
    ctx: typer.Context,
    study_file: Annotated[Path, typer.Argument(help="The study file, e.g. studies/dropout.toml.")],
    out: Annotated[Path | None, typer.Option(help=(
        "Runs go to OUT/<study name>/ (default: runs/<study name>, followed by the "
        "overrides that change a run: runs/dropout-epochs3-subset10000)."))] = _STUDY.out,
    seeds: Annotated[int | None, typer.Option(help="Use seeds 0..N-1 instead of the file's.")
                     ] = _STUDY.seeds,
    epochs: Annotated[int | None, typer.Option(help="Train N epochs instead of the file's.")
                      ] = _STUDY.epochs,
    threads: Annotated[int | None, typer.Option(help=(
        "Train with N torch threads instead of the file's (default 1); part of every "
        "run's config: the same seed gives the same numbers at the same N."))
    ] = _STUDY.threads,
    until_decided: Annotated[bool, typer.Option("--until-decided", help=(
        "Add seeds in rounds (2 per arm) until every verdict is settled, with a "
        "group-sequential design that keeps every error rate at most 0.05 despite the "
        "looks; the first look is at 6 seeds (or --seeds N)."))] = _STUDY.until_decided,
    max_seeds: Annotated[int | None, typer.Option(help=(
        "With --until-decided: the most seeds per arm (default 30, or the file's "
        "seeds.max)."))] = _STUDY.max_seeds,
    subset: Annotated[int | None, typer.Option(
        help="Train on the first N images of a fixed stratified order (smoke runs).")
    ] = _STUDY.subset,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = _STUDY.device,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the plan; train nothing.")
                       ] = _STUDY.dry_run,
    fresh: Annotated[bool, typer.Option("--fresh", help="Forget earlier runs of this study.")
                     ] = _STUDY.fresh,
    wait: Annotated[bool, typer.Option("--wait", help=(
        "If another `ablate study` is training into the same run directory, wait for it to "
        "finish instead of stopping."))] = _STUDY.wait,
    report: Annotated[bool, typer.Option(help="Write the report at the end.")] = _STUDY.report,
    executor: Annotated[Literal["in-process", "ray"], typer.Option(
        help="Where cohorts train: in this process, or as tasks on a Ray cluster "
        "(pip install 'ablate\\[ray]').")] = _STUDY.executor,
    ray_address: Annotated[str | None, typer.Option(
        help="With --executor ray: join this cluster (HOST:PORT of the head node, or "
        "auto); without it a local Ray instance is started.")] = _STUDY.ray_address,
    cpus_per_cohort: Annotated[float, typer.Option(
        help="With --executor ray: CPUs each cohort task declares."
    )] = _STUDY.cpus_per_cohort,
    gpus_per_cohort: Annotated[float, typer.Option(
        help="With --executor ray: GPUs each cohort task declares; fractions share a GPU.")
    ] = _STUDY.gpus_per_cohort,
    log: Annotated[list[str] | None, typer.Option(
        "--log", help="At the end, log every run and the report to a tracker: mlflow[=URI] "
        "(a folder, an SQLite file or a server; default MLflow's own) or "
        "tensorboard[=DIR] (default RUN_DIR/tensorboard); repeatable. An unreachable "
        "tracker is a warning: the runs stay stored (`ablate publish` logs them later).")
    ] = None,
    anatomy: Annotated[bool, typer.Option("--anatomy", help=(
        "After the study, train extra runs of one arm that vary one random stream at a "
        "time (initialization, data order, dropout masks) as one cohort, and print each "
        "stream's share of the seed-to-seed variance (stored in RUN_DIR/anatomy.json, "
        "never in a verdict)."))] = _STUDY.anatomy,
    arm: Annotated[str | None, typer.Option("--arm", help=(
        "With --anatomy: the arm to dissect (default: the first arm with dropout, else "
        "the baseline)."))] = _STUDY.anatomy_arm,
    anatomy_seeds: Annotated[int | None, typer.Option(help=(
        "With --anatomy: runs per stream (default: the study's seeds)."))
    ] = _STUDY.anatomy_seeds,
) -> None:
    """Train every arm of a study over its seeds, store every run, summarise.

    Rerunning skips runs already finished with the same config, so an interrupted
    study resumes where it stopped (a sequential study continues its rounds).
    """
    from ablate.api import Runtime, run_study

    options = StudyOptions(out=out, seeds=seeds, epochs=epochs, threads=threads,
                           until_decided=until_decided,
                           max_seeds=max_seeds, subset=subset, device=device,
                           dry_run=dry_run, fresh=fresh, wait=wait, report=report,
                           executor=executor, ray_address=ray_address,
                           cpus_per_cohort=cpus_per_cohort, gpus_per_cohort=gpus_per_cohort,
                           log=tuple(log or _STUDY.log), anatomy=anatomy,
                           anatomy_arm=arm, anatomy_seeds=anatomy_seeds)
    runtime = ctx.obj if isinstance(ctx.obj, Runtime) else Runtime()  # tests inject theirs
    code = _guard(lambda: run_study(study_file, options, console=console, runtime=runtime
                                    ).exit_code)
    raise typer.Exit(code)


@app.command(cls=_Command)
def runs(
    run_dir: Annotated[Path, typer.Argument(help="A study's run directory, e.g. runs/dropout.")],
    format: Annotated[Literal["table", "csv", "json"], typer.Option(
        "--format", help="table, csv or json (csv and json carry every column).")] = "table",
    wide: Annotated[bool, typer.Option("--wide", help="Show every column.")] = False,
    columns: Annotated[str | None, typer.Option(
        help="Comma-separated columns to show, e.g. arm,seed,val_accuracy,seconds.")] = None,
) -> None:
    """List every run of a study with its status and final metrics.

    The table shows arm, seed, status, best epoch, the study's metric and test
    accuracy; --wide shows every column. Numbers are never cut: a table too wide for
    the terminal is shown one run per block.
    """
    from ablate.api import read_runs
    from ablate.report import run_columns, runs_csv, runs_json, runs_table

    rows = _guard(lambda: read_runs(run_dir))
    if format == "table":
        chosen = _guard(lambda: run_columns(rows.study, wide=wide, columns=(
            [c.strip() for c in columns.split(",") if c.strip()] if columns else None)))
        console.print(runs_table(rows, chosen, console.width))
    else:
        typer.echo(runs_csv(rows) if format == "csv" else runs_json(rows),
                   nl=format == "json")


@app.command(cls=_Command)
def summary(
    study_file: Annotated[Path, typer.Argument(help="The study file.")],
    arm: Annotated[str | None, typer.Option(help="Only this arm.")] = None,
) -> None:
    """Print a Keras-style parameter table for each arm of a study."""
    from ablate.design import load_study
    from ablate.report import keras_summary

    def show() -> None:
        spec = load_study(study_file)
        for a in [spec.arm(arm)] if arm else spec.arms:
            console.print(keras_summary(a))

    _guard(show)


@app.command(cls=_Command)
def report(
    run_dir: Annotated[Path, typer.Argument(help="A study's run directory, e.g. runs/dropout.")],
) -> None:
    """Write RUN_DIR/report.md, report.html and report.json: the statistical verdict."""
    from ablate.api import write_report

    report = _guard(lambda: write_report(run_dir))
    for path in report.paths:
        console.print(f"wrote {path}")


@app.command(cls=_Command)
def analyze(
    source: Annotated[str | None, typer.Argument(
        help="The runs: a table (CSV, TSV, JSON lines, Parquet), an MLflow store (mlruns/ "
        "folder, *.db file or tracking URI) or a TensorBoard folder. May come from "
        "--config instead.")] = None,
    arm: Annotated[list[str] | None, typer.Option(
        "--arm", help="The arm field; repeat for factor fields (the arm is their "
        "combination). MLflow: params.X, tags.X (or X where unambiguous); TensorBoard: "
        "path.KEY (folder KEY=VALUE), path.0, hparams.X.")] = None,
    seed: Annotated[str | None, typer.Option(help="The seed field (default: seed).")] = None,
    metric: Annotated[str | None, typer.Option(help="The metric field.")] = None,
    baseline: Annotated[str | None, typer.Option(help="The baseline arm's name.")] = None,
    rope: Annotated[float | None, typer.Option(
        help="Region of practical equivalence, metric units (default 0).")] = None,
    alpha: Annotated[float | None, typer.Option(
        help="Family-wise error rate of every claim (default 0.05).")] = None,
    resolution: Annotated[float | None, typer.Option(
        help="The metric's grid, e.g. 0.0001 for an accuracy on 10,000 images (the exact "
        "test then counts on it); without it the test counts over the observed values.")
    ] = None,
    lower_is_better: Annotated[bool, typer.Option(
        "--lower-is-better", help="A smaller metric is better (a loss).")] = False,
    status: Annotated[str | None, typer.Option(
        help="A field of done / diverged / failed per run (MLflow default: the run's own "
        "status). A non-finite metric is a diverged run either way.")] = None,
    experiment: Annotated[str | None, typer.Option(
        help="MLflow: the experiment (default: the only one with runs).")] = None,
    out: Annotated[Path | None, typer.Option(
        help="Where report.{md,html,json} go (default: beside the table, or the current "
        "folder).")] = None,
    next_: Annotated[bool, typer.Option(
        "--next", help="Read the runs as the looks of the group-sequential design of "
        "--until-decided: is every contrast settled, and how many seeds to add.")] = False,
    max_seeds: Annotated[int | None, typer.Option(
        help="With --next: the last look, seeds per arm (default 30).")] = None,
    config: Annotated[Path | None, typer.Option(
        "--config", help="A TOML analysis file with these settings as keys (options given "
        "here win).")] = None,
) -> None:
    """The verdict for runs trained anywhere: the same report as `ablate report`."""
    from ablate.api import analyze_next, write_analysis

    def go() -> None:
        from dataclasses import replace

        from ablate.analysis import read_analysis_file
        from ablate.options import AnalyzeOptions

        options, src, text = (read_analysis_file(config) if config is not None
                              else (AnalyzeOptions(), None, ""))
        given: dict[str, Any] = {"arm": tuple(arm) if arm else None, "seed": seed, "metric": metric,
                 "baseline": baseline, "rope": rope, "alpha": alpha,
                 "resolution": resolution, "status": status, "experiment": experiment,
                 "out": out, "max_seeds": max_seeds,
                 "lower_is_better": lower_is_better or None, "next": next_ or None}
        options = replace(options, **{k: v for k, v in given.items() if v is not None})
        where = source or src
        if where is None:
            raise UserError("name the runs: ablate analyze SOURCE (or source = ... in "
                            "--config FILE)")
        if options.next:
            console.print(analyze_next(where, options))
            return
        report = write_analysis(where, options, source_text=text)
        console.print(report.headline)
        for path in report.paths:
            console.print(f"wrote {path}")

    _guard(go)


@app.command(cls=_Command)
def publish(
    run_dir: Annotated[Path, typer.Argument(help="A study's run directory, e.g. runs/dropout.")],
    to: Annotated[list[str], typer.Option(
        "--to", help="mlflow[=URI] (a folder, an SQLite file or a server; default MLflow's "
        "own) or tensorboard[=DIR] (default RUN_DIR/tensorboard); repeatable.")],
) -> None:
    """Log every finished run of a study (config, history, metrics, checkpoint) and its
    report to MLflow or TensorBoard; publishing again adds only what is new."""
    from ablate.publish import parse_target
    from ablate.publish import publish as publish_runs

    _guard(lambda: publish_runs(run_dir, [parse_target(t) for t in to],
                                say=lambda line: console.print(f"logged to {line}")))


@app.command(cls=_Command)
def export(
    run_dir: Annotated[Path, typer.Argument(help="A study's run directory.")],
    arm: Annotated[str | None, typer.Option(help="Best run of this arm (default: any arm).")
                   ] = None,
    to: Annotated[Path | None, typer.Option(
        help="Output .safetensors file (a .json sidecar goes beside it).")] = None,
) -> None:
    """Export the run best on the study's validation metric (never on test) for serving."""
    from ablate.export import export_best

    path = _guard(lambda: export_best(run_dir, arm=arm, to=to))
    console.print(f"exported {path} (+ {path.with_suffix('.json').name})")


@app.command(cls=_Command)
def serve(
    source: Annotated[Path, typer.Argument(
        help="A run directory (its best model is exported on the fly) or an exported "
        ".safetensors model.")],
    host: Annotated[str, typer.Option(help="Interface to bind; loopback by default.")
                    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    name: Annotated[str, typer.Option(help="Model name in the inference API.")] = "mnist",
) -> None:
    """Serve a model over HTTP: Open Inference Protocol, /v1/predict and a drawing page."""
    from ablate.export import resolve_model
    from serve.config import from_env
    from serve.server import check_address, run_server, unwind_on_sigterm

    def go() -> None:
        config = from_env(os.environ)
        check_address(host, port)  # before a run directory's export, not after
        unwind_on_sigterm()  # SIGTERM, like Ctrl-C, removes the temporary export
        with tempfile.TemporaryDirectory(prefix="ablate-serve-") as tmp:
            model = resolve_model(source, Path(tmp))
            run_server(model, config, host=host, port=port, name=name)

    _guard(go)


@app.command(cls=_Command)
def check(
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    examples: Annotated[int, typer.Option(help="Hypothesis examples per property.")] = 50,
) -> None:
    """Check the engine's layer math against a float64 reference on this machine."""
    from ablate.checks import run_checks
    raise typer.Exit(_guard(lambda: run_checks(device, examples)))


if __name__ == "__main__":
    app()

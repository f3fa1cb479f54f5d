"""Study files: the shipped studies, the error messages, and a fuzz of the parser."""

import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ablate.conventions import upgrade_config_dict
from ablate.design import SpecError, load_study, parse_study
from ablate.engine import run_config_from_dict, summary_rows
from ablate.errors import UserError

STUDIES = sorted(Path(__file__).parents[2].joinpath("studies").glob("*.toml"))

VALID = """
name = "t"
question = "Does dropout matter?"
seeds = 3
rope = 0.01

[base]
layers = [32, { units = 16, dropout = 0.0 }]
batch_norm = "after"
dropout = 0.5
optimizer = { name = "sgd", lr = 0.01 }
epochs = 2

[factors.dropout]
baseline = "on"
levels.on = {}
levels.off = { dropout = 0.0 }
"""


def test_every_shipped_study_parses_with_ten_seeds() -> None:
    names = {p.stem for p in STUDIES}
    assert {"notebook", "dropout", "batchnorm", "init", "optimizer", "depth",
            "activation"} <= names
    for path in STUDIES:
        study = load_study(path)
        assert study.name == path.stem
        assert len(study.seeds) == 10 and study.question
        assert len(study.arms) >= 2


def test_dropout_study_arms_differ_only_in_dropout() -> None:
    study = load_study("studies/dropout.toml")
    on, off = study.arms
    assert [lay.dropout for lay in on.config.layers] == [0.5, 0.5, 0.0]
    assert [lay.dropout for lay in off.config.layers] == [0.0, 0.0, 0.0]
    assert on.config.init == off.config.init and on.config.optimizer == off.config.optimizer


def test_keras_conventions_resolve_to_keras_defaults() -> None:
    c = load_study("studies/optimizer.toml")
    arms = {a.name: a.config for a in c.arms}
    adam = arms["optimizer=adam"]
    assert (adam.bn_momentum, adam.bn_eps, adam.leaky_slope) == (0.01, 1e-3, 0.3)
    assert adam.optimizer.eps == 1e-7 and adam.optimizer.lr == 1e-3
    ada = arms["optimizer=adagrad"].optimizer
    assert (ada.initial_accumulator, ada.eps) == (0.1, 1e-7)
    delta = arms["optimizer=adadelta"].optimizer
    assert (delta.lr, delta.rho) == (0.001, 0.95)
    assert adam.init.name == "glorot_uniform" and adam.init.truncated


def _keras_dense(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def test_notebook_summaries_match_keras_counts() -> None:
    """Keras: Dense = in*out + out; BatchNormalization = 4 * units, half non-trainable."""
    study = load_study("studies/notebook.toml")
    expected = {  # (total, non-trainable), from Keras's formulas for the notebook's models
        "model=model1": (_keras_dense(784, 512) + _keras_dense(512, 128) + _keras_dense(128, 64)
                         + _keras_dense(64, 10) + 4 * (512 + 128 + 64), 2 * (512 + 128 + 64)),
        "model=model2": (_keras_dense(784, 512) + _keras_dense(512, 128) + _keras_dense(128, 128)
                         + _keras_dense(128, 64) + _keras_dense(64, 10)
                         + 4 * (512 + 128 + 128 + 64), 2 * (512 + 128 + 128 + 64)),
        "model=model3": (_keras_dense(784, 512) + _keras_dense(512, 128) + _keras_dense(128, 128)
                         + _keras_dense(128, 64) + 2 * _keras_dense(64, 64) + _keras_dense(64, 10)
                         + 4 * (512 + 128 + 128 + 64 * 3), 2 * (512 + 128 + 128 + 64 * 3)),
    }
    assert expected["model=model1"] == (479_306, 1_408)  # what Keras prints for model 1
    for arm in study.arms:
        rows = summary_rows(arm.config)
        total = sum(r.params for r in rows)
        assert (total, total - sum(r.trainable for r in rows)) == expected[arm.name]
    rows = summary_rows(study.arms[0].config)
    assert [r.layer for r in rows[:4]] == ["dense (Dense)",
                                           "batch_normalization (BatchNormalization)",
                                           "dropout (Dropout)", "dense_1 (Dense)"]


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda t: t.replace("rope = 0.01", "rpoe = 0.01"), "rpoe: unknown key; did you mean 'rope'?"),
    (lambda t: t.replace("batch_norm = \"after\"", "batch_norm = \"aftr\""),
     "base.batch_norm: expected one of off, before, after, got 'aftr'; did you mean 'after'?"),
    (lambda t: t.replace("levels.off = { dropout = 0.0 }", "levels.off = { dropuot = 0.0 }"),
     "factors.dropout.levels.off.dropuot: unknown key; did you mean 'dropout'?"),
    (lambda t: t.replace("dropout = 0.5", "dropout = 1.5"), "base.dropout: expected a number in"),
    (lambda t: t.replace("epochs = 2", "epochs = \"two\""),
     "base.epochs: expected an integer, got a string"),
    (lambda t: t.replace("name = \"sgd\"", "name = \"sgdd\""),
     "base.optimizer.name: expected one of"),
    (lambda t: t.replace("lr = 0.01", "lr = 0.01, beta1 = 0.9"),
     "base.optimizer.beta1: not a hyperparameter of 'sgd'"),
    (lambda t: t.replace("seeds = 3", "seeds = 0"), "seeds: expected a count >= 1"),
    (lambda t: t.replace("levels.off = { dropout = 0.0 }", "levels.off = { dropout = 0.5 }"),
     "trains exactly the same configuration"),
    (lambda t: t.replace("[base]", "[base\n"), "not valid TOML"),
    (lambda t: t.replace("layers = [32, { units = 16, dropout = 0.0 }]", "layers = []"),
     "base.layers: expected a non-empty array"),
    (lambda t: "validation = 0\n" + t, "needs a validation split"),
    (lambda t: t.replace("epochs = 2", "epochs = 2\nthreads = 0"),
     "base.threads: expected an integer >= 1, got 0"),
])
def test_bad_files_fail_with_one_line_naming_file_and_key(mutate, message: str) -> None:  # noqa: ANN001
    with pytest.raises(SpecError) as info:
        parse_study(mutate(VALID), "my.toml")
    text = str(info.value)
    assert text.startswith("my.toml: ") and message in text
    assert "\n" not in text


def test_missing_file_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="no such study file"):
        load_study(tmp_path / "nope.toml")


def test_factorial_design_crosses_every_level() -> None:
    text = VALID.replace('rope = 0.01', 'rope = 0.01\ndesign = "factorial"') + """
[factors.bn]
levels.after = { batch_norm = "after" }
levels.off = { batch_norm = "off" }
"""
    study = parse_study(text)
    assert [a.name for a in study.arms] == ["dropout=on,bn=after", "dropout=on,bn=off",
                                            "dropout=off,bn=after", "dropout=off,bn=off"]
    off_off = study.arms[3].config
    assert all(lay.dropout == 0 and lay.batch_norm == "off" for lay in off_off.layers)


def test_one_at_a_time_with_two_factors_names_only_the_change() -> None:
    text = VALID + """
[factors.bn]
levels.after = { batch_norm = "after" }
levels.off = { batch_norm = "off" }
"""
    assert [a.name for a in parse_study(text).arms] == ["baseline", "dropout=off", "bn=off"]


# -- fuzz: random mutations of valid files never crash the parser --------------------

_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=8), st.lists(st.integers(-3, 600), max_size=4),
                    st.dictionaries(st.text(max_size=6), st.integers(), max_size=3))


def _to_toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        text = repr(value)
        return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(text, text)
    if isinstance(value, str):
        return '"' + value.encode("unicode_escape").decode().replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_to_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f'"{k}" = {_to_toml(v)}' for k, v in value.items()) + "}"
    return '""'


def _lines() -> list[str]:
    return VALID.strip().splitlines()


@given(st.data())
def test_mutated_files_raise_spec_error_or_parse(data: st.DataObject) -> None:
    lines = _lines()
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(lines) - 1))
        kind = data.draw(st.sampled_from(["delete", "value", "key", "truncate", "insert"]))
        line = lines[i]
        if kind == "delete":
            lines.pop(i)
        elif kind == "value" and "=" in line:
            value = data.draw(_VALUES)
            if value is not None:
                lines[i] = line.split("=", 1)[0] + "= " + _to_toml(value)
        elif kind == "key" and "=" in line:
            key = data.draw(st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=10))
            lines[i] = key + " =" + line.split("=", 1)[1]
        elif kind == "truncate":
            lines[i] = line[: data.draw(st.integers(0, len(line)))]
        else:
            lines.insert(i, data.draw(st.text(max_size=20)))
        if not lines:
            break
    text = "\n".join(lines)
    try:
        study = parse_study(text, "fuzz.toml")
    except SpecError as exc:
        assert str(exc).startswith("fuzz.toml: ") and "\n" not in str(exc)
        return
    # A file that parses must be fully valid: TOML, a baseline first, distinct arms.
    tomllib.loads(text)
    assert study.arms and len({a.config for a in study.arms}) == len(study.arms)


def test_summary_command_prints_the_keras_table() -> None:
    from typer.testing import CliRunner

    from ablate.cli import app

    result = CliRunner().invoke(app, ["summary", "studies/dropout.toml", "--arm", "dropout=on"])
    assert result.exit_code == 0
    for text in ("dense (Dense)", "dropout_1 (Dropout)", "(None, 512)", "401,920",
                 "Total params: 479,306", "Trainable params: 477,898",
                 "Non-trainable params: 1,408"):
        assert text in result.output


def test_sequential_seeds_parse_and_resolve_their_looks() -> None:
    study = parse_study(VALID.replace("seeds = 3", "seeds = { min = 6, max = 11 }"), "s.toml")
    assert study.seeds == tuple(range(6))
    assert study.sequential is not None and study.sequential.looks() == (6, 8, 10, 11)
    with pytest.raises(SpecError, match="seeds.max"):
        parse_study(VALID.replace("seeds = 3", "seeds = { min = 8, max = 6 }"), "s.toml")
    with pytest.raises(SpecError, match="did you mean 'max'"):
        parse_study(VALID.replace("seeds = 3", "seeds = { min = 6, maxx = 9 }"), "s.toml")


def test_until_decided_turns_a_fixed_study_sequential() -> None:
    study = parse_study(VALID, "s.toml")
    seq = study.with_overrides(until_decided=True, max_seeds=9)
    assert seq.seeds == tuple(range(6))  # the first look: the fewest seeds that can decide
    assert seq.sequential is not None and seq.sequential.looks() == (6, 8, 9)
    assert study.with_overrides(until_decided=True).sequential.max == 30  # type: ignore[union-attr]
    own = study.with_overrides(seeds=3, until_decided=True, max_seeds=9)  # --seeds: first look
    assert own.sequential is not None and own.sequential.looks() == (3, 5, 7, 9)
    with pytest.raises(UserError, match="--max-seeds goes with --until-decided"):
        study.with_overrides(max_seeds=9)
    with pytest.raises(UserError, match="at least the 6 seeds"):
        study.with_overrides(until_decided=True, max_seeds=5)


def test_old_metric_names_mean_the_selection_free_ones() -> None:
    """Study files from before the cross-fitted metrics keep working: `val_accuracy`
    (compare on validation) now compares selection-free."""
    old = parse_study(VALID.replace("rope = 0.01", 'rope = 0.01\nmetric = "val_accuracy"'), "o")
    assert old.metric.name == "crossfit_val_accuracy" and old.metric.selection_free
    loss = parse_study(VALID.replace("rope = 0.01", 'rope = 0.01\nmetric = "val_loss"'), "o")
    assert loss.metric.name == "crossfit_val_loss" and not loss.higher_is_better
    assert parse_study(VALID, "o").metric.name == "crossfit_val_accuracy"  # the default


def test_conventions_resolve_into_explicit_forms() -> None:
    """Every convention-dependent choice is a named field of the run config, so the engine
    trains from fields alone (it never reads `conventions`, which stays a label)."""
    arms = {a.name: a.config for a in load_study("studies/optimizer.toml").arms}
    keras = {name: c.optimizer for name, c in arms.items()}
    assert all(c.bn_running_var == "biased" for c in arms.values())
    assert keras["optimizer=adam"].bias_correction == "step_size"
    assert keras["optimizer=adagrad"].eps_placement == "inside_sqrt"
    assert keras["optimizer=rmsprop"].eps_placement == "inside_sqrt"
    torch_study = parse_study(VALID.replace("[base]", '[base]\nconventions = "torch"\n'
                                            'optimizer = "momentum"').replace(
        'optimizer = { name = "sgd", lr = 0.01 }\n', ""))
    c = torch_study.baseline.config
    assert c.bn_running_var == "unbiased" and c.optimizer.velocity == "gradients"
    assert (c.bn_momentum, c.bn_eps, c.leaky_slope) == (0.1, 1e-5, 0.01)


def test_configs_stored_before_the_forms_were_fields_are_upgraded() -> None:
    """A stored config dict without the form fields names only its conventions; the upgrade
    fills in the forms those conventions stood for, giving back today's config."""
    for path in ("studies/optimizer.toml", "studies/dropout.toml"):
        for arm in load_study(path).arms:
            now = arm.config.to_dict()
            old = {k: v for k, v in now.items() if k != "bn_running_var"}
            old["optimizer"] = {k: v for k, v in now["optimizer"].items()
                                if k not in ("velocity", "eps_placement", "bias_correction")}
            with pytest.raises(KeyError):
                run_config_from_dict(old)
            assert run_config_from_dict(upgrade_config_dict(old)) == arm.config
            assert upgrade_config_dict(now) == now


def test_the_thread_count_is_a_study_key_and_an_override() -> None:
    """Runs train at 1 thread unless the file or `--threads` says otherwise."""
    study = parse_study(VALID, "t.toml")
    assert {a.run_config.threads for a in study.arms} == {1}
    two = parse_study(VALID.replace("epochs = 2", "epochs = 2\nthreads = 2"), "t.toml")
    assert {a.run_config.threads for a in two.arms} == {2}
    assert {a.run_config.threads for a in study.with_overrides(threads=3).arms} == {3}
    with pytest.raises(UserError, match="--threads must be at least 1"):
        study.with_overrides(threads=0)


def test_estimand_defaults_to_the_median_and_round_trips_through_the_record() -> None:
    from ablate.design import StudyRecord

    study = parse_study(VALID, "s.toml")
    assert study.estimand == "median"
    mean = parse_study(VALID.replace("seeds = 3", 'seeds = 3\nestimand = "mean"'), "s.toml")
    assert mean.estimand == "mean"
    with pytest.raises(SpecError, match="estimand"):
        parse_study(VALID.replace("seeds = 3", 'seeds = 3\nestimand = "trimmed"'), "s.toml")
    record = StudyRecord(study=mean, study_file="s.toml", source=VALID, subset=None,
                         device="cpu", provenance={})
    assert StudyRecord.from_json(record.to_json()).study.estimand == "mean"
    # A record written before the key existed was decided on the mean, and still is.
    old = record.to_json().replace('"estimand": "mean",', "")
    assert '"estimand"' not in old
    assert StudyRecord.from_json(old).study.estimand == "mean"

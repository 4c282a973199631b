"""The typed configuration: every field that can change a number changes the digest; parsing rejects
bad values with one argparse error before anything is loaded."""
import dataclasses

import pytest

from empirical.harness import config as cfg

# Options that never change a number: where outputs go, how the run looks, torch's thread count.
NOT_DIGESTED = {"output"}


def _leaves(obj, prefix=""):
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            yield from _leaves(value, f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", value


def _changed(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, tuple):
        return value + (("extra", 1),) if value and isinstance(value[0], tuple) else value + ("none",)
    return 7


def test_every_field_but_outputs_changes_the_digest():
    base = cfg.Config(table="1", extra=(("k", 24),))
    seen = 0
    for path, value in _leaves(base):
        top, _, leaf = path.partition(".")
        new = _changed(value)
        changed = cfg.replace(base, **({top: {leaf: new}} if leaf else {top: new}))
        same = cfg.digest(changed.digest_view()) == cfg.digest(base.digest_view())
        assert same == (top in NOT_DIGESTED), path
        seen += 1
    assert seen >= 25


def test_small_float_differences_change_the_digest():
    a = cfg.Config(table="1", purifier=cfg.PurifierConfig(toy_sigma=0.4500))
    b = cfg.Config(table="1", purifier=cfg.PurifierConfig(toy_sigma=0.45001))
    assert cfg.digest(a.digest_view()) != cfg.digest(b.digest_view())


SPEC = cfg.TableSpec("prog", "doc", "1")


@pytest.mark.parametrize("argv, message", [
    (["--seed", "-1"], "--seed must be in"), (["--step-size", "nan"], "finite"), (["--toy-sigma", "nan"], "finite"),
    (["--device", "foo"], "is not a device"), (["--device", "meta"], "only cpu and cuda"),
    (["--threads", "100000"], "--threads must be at most"), (["--fresh-evals", "100000"], "at most"),
    (["--n-samples", "8", "--n-clean", "4"], "--n-clean (4) must be >= --n-samples (8)"),
    (["--eps", "1/0"], "fraction"), (["--resume", "--results", "x.json", "--overwrite"], "contradict"),
])
def test_bad_values_get_one_argparse_error(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cfg.parse(SPEC, argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_eps_accepts_fractions():
    assert cfg.parse(SPEC, ["--eps", "8/255"]).sizes.eps == pytest.approx(8 / 255)


def test_results_and_json_on_the_same_path_are_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cfg.parse(SPEC, ["--results", str(tmp_path / "a.json"), "--json", str(tmp_path / "a.json")])
    assert "same file" in capsys.readouterr().err


def test_existing_store_without_resume_or_overwrite_is_refused_before_work(tmp_path, capsys):
    store = tmp_path / "r.json"
    store.write_text("{}")
    with pytest.raises(SystemExit):
        cfg.parse(SPEC, ["--results", str(store)])
    assert "--overwrite" in capsys.readouterr().err and store.read_text() == "{}"
    with pytest.raises(SystemExit):
        cfg.parse(SPEC, ["--results", str(tmp_path / "typo.json"), "--resume"])
    assert "no results store" in capsys.readouterr().err

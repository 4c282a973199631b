"""Defences that fooled the audit's first version: randomness with few outcomes, an owned coin, a zero
gradient, input-dependent draws, failures after parsing, power from a near-zero SD."""
import fcntl
import json
import math

import pytest
import torch
from torch import nn

from empirical import audit as audit_cli
from empirical.auditing import AuditConfig, audit, decide
from empirical.examples import defences, pitfalls

SMALL = dict(steps=2, eot=2, fresh_evals=2, predict_samples=0)
CLI_SMALL = ["--steps", "2", "--eot", "2", "--fresh-evals", "2", "--predict-samples", "0", "--quiet",
             "--threads", "1"]


@pytest.fixture(scope="module")
def digits():
    from empirical.data import load_digits
    d = load_digits("test")
    return d.x[:64], d.y[:64], d.ids[:64]


def _fail(argv, capsys):
    """Run the CLI expecting an error and exit status 2, no traceback; return the error, from its line on
    (a store's configuration mismatch lists the differing options on the lines below)."""
    with pytest.raises(SystemExit) as stop:
        audit_cli.main(argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "Traceback" not in err
    start = err.index("python -m empirical.audit: error: ")
    assert err.count("error:") == 1, err
    return err[start:]


def test_a_two_outcome_coin_per_call_is_randomized_at_every_seed_and_in_every_chunk(digits):
    for seed in range(12):
        cfg = AuditConfig(n_samples=24, batch_size=8, seed=seed, **{**SMALL, "steps": 1})
        rep = audit(pitfalls.coin_shift, cfg, data=digits)
        assert rep.randomized and all(r["randomized"] for r in rep.records), seed
        assert rep.verdict != "deterministic"
    probe = rep.preflight["randomness"]
    assert probe["calls"] == 21 and probe["miss_bound"] <= 1e-6 and probe["distinct_outputs"] == 2


@pytest.mark.parametrize("seed", [0, 1, 2, 5, 13])
def test_an_owned_coin_is_refused_with_one_line_naming_it(seed, capsys):
    line = _fail(["--model", "empirical.examples.pitfalls:owned_coin_shift", "--n-samples", "16", "--seed",
                  str(seed)] + CLI_SMALL, capsys)
    assert "same replay key" in line and "model.purifier.rng (a random.Random the model owns)" in line


def test_a_quantiser_is_attacked_through_its_stages_not_reported_at_clean_accuracy(digits):
    rep = audit(pitfalls.quantised, AuditConfig(n_samples=32, batch_size=32, **{**SMALL, "steps": 5}), data=digits)
    clean = rep.cells["clean_replay"].mean
    assert rep.cells["replay_replay"].mean < clean - 30                        # PGD through round() never moves
    health = rep.preflight["gradient_health"]
    assert health["full"]["status"] == "zero" and health["stages_found"] == ["purifier", "classifier"]
    assert rep.config.gradient == "bpda" and health["bpda"]["status"] == "healthy"
    assert rep.report["acc"] < clean - 30


class _RoundInside(nn.Module):
    def __init__(self):
        super().__init__()
        from empirical.checkpoints import load_digits_classifier
        self.cnn = load_digits_classifier("clean")

    def forward(self, x):
        return self.cnn(torch.round(x * 7) / 7)


def round_inside():
    return _RoundInside()


def test_a_zero_gradient_with_no_stages_to_find_is_refused_naming_the_fix(capsys):
    line = _fail(["--model", f"{__file__}:round_inside", "--n-samples", "16"] + CLI_SMALL, capsys)
    assert "gradient through the whole defence is zero on 8 of 8 samples" in line
    assert "--purifier-stage" in line and "children: cnn" in line


def test_input_dependent_draws_are_their_own_verdict(digits):
    rep = audit(pitfalls.activation_pruning, AuditConfig(n_samples=32, batch_size=32, **SMALL), data=digits)
    dependence = rep.preflight["input_dependence"]
    assert dependence["dependent"] and dependence["moved"]["step-size"] > 0 and dependence["fresh"] > 0
    assert rep.verdict == "input-dependent"
    assert "seed, not the draws" in rep.recommendation and "step size" not in rep.recommendation


def test_no_draws_move_with_the_input_for_input_independent_noise(digits):
    rep = audit(defences.gaussian_noise, AuditConfig(n_samples=16, batch_size=16, **SMALL), data=digits)
    assert rep.preflight["input_dependence"]["dependent"] is False and rep.verdict != "input-dependent"


class _RandomOnBrightInputs(nn.Module):
    """Deterministic on the first (preflight) samples, randomized on samples brighter than they are."""

    def __init__(self, threshold):
        super().__init__()
        self.threshold, self.head = threshold, nn.Sequential(nn.Flatten(), nn.Linear(256, 10))

    def forward(self, x):
        bright = (x.flatten(1).mean(1) > self.threshold).float().view(-1, 1, 1, 1)
        return self.head(x + bright * torch.randn_like(x))


def test_a_deterministic_decision_is_checked_in_every_chunk(digits):
    x, y, ids = digits
    threshold = float(x[:8].flatten(1).mean(1).max())
    assert bool((x[8:32].flatten(1).mean(1) > threshold).any())
    with pytest.raises(ValueError, match="found it deterministic"):
        audit(_RandomOnBrightInputs(threshold), AuditConfig(n_samples=32, batch_size=8, **SMALL), data=digits)
    rep = audit(defences.digits_cnn, AuditConfig(n_samples=16, batch_size=8, **SMALL), data=digits)
    assert rep.verdict == "deterministic" and all(r["deterministic_check"]["identical"] for r in rep.records)


class _NoiseOnMarkedImages(nn.Module):
    """Noise only on images whose top-left pixel is lit (no attack within eps = 32/255 changes which)."""

    def __init__(self):
        super().__init__()
        from empirical.checkpoints import load_digits_classifier
        self.cnn = load_digits_classifier("clean")

    def forward(self, x):
        return self.cnn(x + 0.3 * torch.randn_like(x) * (x[..., :1, :1] > 0.5))


def test_the_toy_reading_never_crashes_an_audit(digits):
    x, y, ids = (t[:32].clone() for t in digits)
    x[:, :, 0, 0] = 0.0
    x[:4, :, 0, 0] = 1.0                          # randomized: the first four; the toy cannot read the others
    cfg = AuditConfig(n_samples=32, batch_size=32, steps=5, eot=1, fresh_evals=2, predict_samples=8)
    rep = audit(_NoiseOnMarkedImages(), cfg, data=(x, y, ids))
    assert rep.randomized and rep.records[0]["toy_note"].startswith("toy reading not applicable")
    assert rep.toy["notes"] and rep.cells["replay_replay"].n == 32
    assert "toy reading not applicable" in audit_cli.render(rep)


def test_the_toy_reading_runs_through_predict_chunk(digits, monkeypatch):
    from empirical import predict
    calls = []
    real = predict.predict_chunk
    monkeypatch.setattr(predict, "predict_chunk", lambda *a, **k: calls.append(1) or real(*a, **k))
    cfg = AuditConfig(n_samples=16, batch_size=16, steps=3, eot=1, fresh_evals=2, predict_samples=2)
    rep = audit(defences.gaussian_noise, cfg, data=digits)
    assert calls == [1] and rep.toy["measured_samples"] > 0


def test_power_is_not_bought_with_a_near_zero_sd():
    from empirical import stats
    near_zero = stats.Difference(mean=0.8, se=0.78, n=128, sd=8.8)       # 1 of 128 samples differs
    verdict, power, detectable = decide(True, near_zero, near_zero, 5.0)
    assert detectable > 5 and power < 0.8 and verdict == "inconclusive"


def _records(n, fresh_ok, replay_ok, worst_ok):
    """One chunk of n samples: fresh cells correct on fresh_ok samples under both draws, replay on replay_ok."""
    row = lambda k: [True] * k + [False] * (n - k)
    two = lambda k, w: [row(k), row(w)]
    return [{"chunk": 0, "ids": list(range(n)), "randomized": True, "clean_fresh": two(n, n),
             "clean_replay": row(n), "fresh_fresh": two(fresh_ok, worst_ok), "fresh_replay": row(fresh_ok),
             "eot_fresh": two(fresh_ok, worst_ok), "eot_replay": row(fresh_ok),
             "replay_fresh": two(replay_ok + 4, replay_ok + 4), "replay_replay": row(replay_ok)}]


def test_advice_names_the_lowest_number_and_the_sample_size_the_dataset_allows():
    from empirical.auditing import summarise
    cfg = AuditConfig(n_samples=128, fresh_evals=2, min_effect=1.5)
    rep = summarise(_records(128, 40, 38, 10), cfg, available=450)
    assert rep.verdict == "inconclusive" and rep.needed > 450
    assert "the digits set holds 450" in rep.recommendation and "cannot decide" in rep.recommendation
    assert rep.report["cell"] == "fresh_fresh" and rep.report["acc"] < rep.cells["replay_replay"].mean
    assert rep.report["strict"]["acc"] < rep.report["acc"]
    assert "model's robustness" not in rep.recommendation and "correct under all 2 fresh draws" in rep.recommendation


@pytest.mark.parametrize("argv, words", [
    (["--min-effect", "inf"], "--min-effect"), (["--min-effect", "nan"], "--min-effect"),
    (["--fresh-evals", "1e8"], "--fresh-evals"), (["--fresh-evals", "100000000"], "--fresh-evals must be at most"),
    (["--steps", "1000000"], "--steps must be at most"), (["--eot", "5000"], "--eot must be at most"),
    (["--n-samples", "100000000"], "--n-samples must be at most")])
def test_too_large_numbers_are_refused_before_anything_is_loaded(argv, words, capsys):
    assert words in _fail(["--model", "no_such_module_here:make"] + argv, capsys)


@pytest.fixture
def store_run(tmp_path):
    store = tmp_path / "audit.json"
    base = ["--model", "empirical.examples.defences:gaussian_noise", "--n-samples", "8", "--batch-size", "4",
            "--results", str(store)] + CLI_SMALL
    audit_cli.main(base)
    return store, base


def test_a_config_mismatch_on_resume_is_one_line(store_run, capsys):
    store, base = store_run
    capsys.readouterr()
    error = _fail(base + ["--resume", "--seed", "3"], capsys)
    assert "another configuration" in error and "seed" in error


def test_a_tampered_record_is_one_line(store_run, capsys):
    store, base = store_run
    saved = json.loads(store.read_text())
    record = next(iter(saved["records"].values()))
    record["data"]["replay_replay"][0] = not record["data"]["replay_replay"][0]
    store.write_text(json.dumps(saved))
    assert "checksum" in _fail(base + ["--resume"], capsys)


def test_a_second_writer_is_one_line(store_run, capsys):
    store, base = store_run
    with open(str(store) + ".lock", "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert "in use" in _fail(base + ["--resume"], capsys)


def test_json_carries_its_schema_and_the_checks(tmp_path):
    out = tmp_path / "a.json"
    audit_cli.main(["--model", "empirical.examples.defences:gaussian_noise", "--n-samples", "8", "--json", str(out)]
                   + CLI_SMALL)
    saved = json.loads(out.read_text())
    assert saved["schema"] == 2 and saved["randomness"]["calls"] == 21 and saved["randomness"]["randomized"]
    assert saved["gradient_health"]["full"]["status"] == "healthy" and saved["replay_check"]["calls"] == 21
    assert saved["input_dependence"]["dependent"] is False
    assert saved["report"]["acc"] == min(saved["cells"][c]["acc"]
                                         for c in ("replay_replay", "fresh_fresh", "eot_fresh", "replay_fresh"))
    assert math.isclose(saved["power"]["sd_floor"], 100 * math.sqrt(0.05 * 0.95))


def test_the_audit_library_does_not_import_the_harness():
    import ast
    from pathlib import Path
    root = Path(__file__).resolve().parents[1] / "empirical"
    for name in ("auditing.py", "audit_probes.py", "audit_summary.py", "replay.py"):
        path = root / name
        if not path.exists():
            continue
        tree = ast.parse(path.read_text())
        imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert not any(m.startswith("empirical.harness") for m in imported), name

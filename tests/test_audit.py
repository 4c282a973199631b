import json
import math

import pytest

from empirical import attacks, audit as audit_cli, stats
from empirical.auditing import AuditConfig, audit, audit_chunk, decide, summarise
from empirical.examples import defences
from empirical.replay import UncontrolledRandomnessError

FACTORIES = '''
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def _linear(out=10):
    layer = nn.Linear(256, out)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        layer.weight.copy_(0.1 * torch.randn(layer.weight.shape, generator=g))
        layer.bias.zero_()
    return nn.Sequential(nn.Flatten(), layer)


class Noisy(nn.Module):
    def __init__(self, sigma=0.3, out=10):
        super().__init__()
        self.classifier, self.sigma = _linear(out), sigma

    def purifier(self, x):
        return x + self.sigma * torch.randn_like(x)

    def forward(self, x):
        return self.classifier(self.purifier(x))


class NumpyNoisy(Noisy):
    def forward(self, x):
        return self.classifier(x + torch.from_numpy(np.random.normal(0, 0.3, x.shape).astype(np.float32)))


class NaN(Noisy):
    def forward(self, x):
        return super().forward(x) * float("nan")


class Detached(Noisy):
    def forward(self, x):
        return super().forward(x).detach()


class AlwaysDropout(nn.Module):
    def forward(self, x):
        return F.dropout(x, 0.5, training=True)


class RandomHead(Noisy):
    def __init__(self):
        super().__init__()
        self.classifier = nn.Sequential(_linear(), AlwaysDropout())


class Scaled(Noisy):
    def forward(self, x):
        return 2 * super().forward(x)


def noisy():
    return Noisy()


def numpy_noisy():
    return NumpyNoisy()


def not_a_module():
    return 3


def raises():
    raise RuntimeError("no weights here")


def wrong_shape():
    return Noisy(out=7)


def nan_logits():
    return NaN()


def detached():
    return Detached()


def random_head():
    return RandomHead()


def scaled():
    return Scaled()
'''


@pytest.fixture
def factories(tmp_path):
    path = tmp_path / "factories.py"
    path.write_text(FACTORIES)
    return str(path)


@pytest.fixture
def no_attack(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("an attack ran before the model was validated")
    monkeypatch.setattr(attacks, "pgd", refuse)


def _cli(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        audit_cli.main(argv + ["--quiet", "--n-samples", "8", "--threads", "1"])
    assert stop.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("name, message", [
    ("no_such_module_here:make", "cannot import 'no_such_module_here'"),
    ("{path}:missing", "has no callable 'missing'"),
    ("{path}:not_a_module", "returned int, expected a torch.nn.Module"),
    ("{path}:raises", "raised RuntimeError: no weights here"),
    ("{path}:wrong_shape", "expected logits [8, 10]"),
    ("{path}:nan_logits", "NaN"),
    ("{path}:numpy_noisy", "NumPy's global RNG"),
    ("{path}:detached", "gradient through the whole defence is missing"),
])
def test_a_bad_model_gets_one_clear_error_before_any_attack(factories, no_attack, capsys, name, message):
    err = _cli(["--model", name.format(path=factories)], capsys)
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize("name, stages, message", [
    ("noisy", ["--purifier-stage", "purifier"], "--classifier-stage"),
    ("noisy", ["--purifier-stage", "nothing", "--classifier-stage", "classifier"], "'nothing'"),
    ("random_head", ["--purifier-stage", "purifier", "--classifier-stage", "classifier"],
     "classifier stage is randomized"),
    ("scaled", ["--purifier-stage", "purifier", "--classifier-stage", "classifier"], "differs from the model's output"),
])
def test_bpda_stages_must_compose_the_model(factories, no_attack, capsys, name, stages, message):
    err = _cli(["--model", f"{factories}:{name}"] + stages, capsys)
    assert message in err


def test_options_are_checked_before_the_model_is_loaded(capsys, tmp_path):
    for argv, message in ((["--eps", "8/0"], "--eps"), (["--eot", "0"], "eot must be >= 1"),
                          (["--json", str(tmp_path / "no" / "x.json")], "does not exist")):
        assert message in _cli(["--model", "no_such_module_here:make"] + argv, capsys)


def test_numpy_randomness_stops_the_python_api_too(factories, no_attack, digits_subset):
    import importlib.util
    spec = importlib.util.spec_from_file_location("factories_api", factories)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(UncontrolledRandomnessError, match="NumPy"):
        audit(module.numpy_noisy, AuditConfig(n_samples=8), data=digits_subset)


@pytest.fixture
def digits_subset():
    from empirical.data import load_digits
    d = load_digits("test")
    return d.x[:128], d.y[:128], d.ids[:128]


def test_deterministic_model_is_reported_deterministic_and_replay_changes_nothing(tmp_path, capsys):
    out = tmp_path / "audit.json"
    rep = audit_cli.main(["--model", "empirical.examples.defences:digits_cnn", "--n-samples", "16", "--batch-size",
                          "8", "--steps", "3", "--eps", "16/255", "--eot", "3", "--fresh-evals", "2", "--quiet",
                          "--threads", "1", "--json", str(out)])
    assert rep.verdict == "deterministic" and not rep.randomized
    for record in rep.records:
        for name in ("clean", "fresh", "eot", "replay"):
            assert record[f"{name}_fresh"] == [record["replay_replay" if name != "clean" else "clean_replay"]] * 2
    saved = json.loads(out.read_text())
    assert saved["verdict"] == "deterministic" and saved["randomized"] is False
    for key in ("clean", "fresh", "eot", "replay", "replay_crafted_fresh"):
        assert set(saved[key]) >= {"acc", "se"}
    assert saved["drop"]["mean"] == 0 and saved["drop"]["se"] == 0
    assert math.isclose(saved["config"]["eps"], 16 / 255) and saved["config"]["steps"] == 3
    printed = capsys.readouterr().out
    assert "Verdict: deterministic" in printed and max(len(line) for line in printed.splitlines()) <= 100


def test_gaussian_example_is_masking_and_eot_does_not_close_the_gap(digits_subset):
    cfg = AuditConfig(model="gaussian_noise", n_samples=128, steps=5, eot=2, fresh_evals=2, predict_samples=0)
    rep = audit(defences.gaussian_noise, cfg, data=digits_subset)
    assert rep.verdict == "masking" and rep.randomized
    assert rep.drop_eot.mean >= 2 * rep.drop_eot.se and rep.drop.mean >= 2 * rep.drop.se
    assert rep.cells["replay_fresh"].mean > rep.cells["replay_replay"].mean   # Theorem 1: transfer fails
    single = ("replay_replay", "fresh_fresh", "eot_fresh", "replay_fresh")
    assert rep.report["acc"] == min(rep.cells[c].mean for c in single)      # the lowest valid number, named
    assert f"Report {rep.report['acc']:.1f}" in rep.recommendation and rep.report["estimand"] in rep.recommendation


@pytest.mark.slow
def test_gaussian_example_at_the_default_budget():
    rep = audit(defences.gaussian_noise, AuditConfig(model="gaussian_noise"))
    assert rep.verdict == "masking" and rep.toy["measured_samples"] > 0


@pytest.mark.parametrize("keys", ["batch", "sample"])
def test_chunks_are_deterministic_and_sample_keys_make_chunking_irrelevant(factories, digits_subset, keys):
    import importlib.util
    spec = importlib.util.spec_from_file_location("factories_chunks", factories)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model, (x, y, ids) = module.noisy(), digits_subset
    cfg = AuditConfig(n_samples=8, batch_size=8, steps=2, eot=2, fresh_evals=2, keys=keys, predict_samples=2)
    whole = audit_chunk(model, x[:8], y[:8], ids[:8], 0, cfg, True)
    assert audit_chunk(model, x[:8], y[:8], ids[:8], 0, cfg, True) == whole    # a resumed chunk is the same chunk
    json.dumps(whole)
    parts = [audit_chunk(model, x[:3], y[:3], ids[:3], 0, cfg, True),
             audit_chunk(model, x[3:8], y[3:8], ids[3:8], 1, cfg, True)]
    cells = [k for k in whole if k.endswith(("_fresh", "_replay"))]
    same = all(summarise(parts, cfg).cells[k] == summarise([whole], cfg).cells[k] for k in cells)
    assert same == (keys == "sample")


def test_bpda_reads_the_toy_model_in_image_space(factories, digits_subset):
    import importlib.util
    spec = importlib.util.spec_from_file_location("factories_bpda", factories)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cfg = AuditConfig(n_samples=16, batch_size=16, steps=3, eot=2, fresh_evals=2, purifier_stage="purifier",
                      classifier_stage="classifier", predict_samples=2, eps=0.3)
    rep = audit(module.noisy(), cfg, data=digits_subset)
    assert rep.config.gradient == "bpda" and rep.randomized
    assert rep.toy["measured_samples"] > 0 and rep.toy["n_ambient"] == 256
    assert 0.2 < rep.toy["mean_sigma_ambient"] < 0.4                        # the purifier's sigma = 0.3
    (record,) = rep.records
    fooled = sum(c and not r for c, r in zip(record["clean_replay"], record["replay_replay"]))
    rescue = sum(1 - s["fit"]["p_fresh"] for s in record["toy"]) / len(record["toy"])
    assert math.isclose(rep.toy["predicted_accuracy"], rep.cells["replay_replay"].mean + 100 * fooled * rescue / 16)


def _diff(mean, sd, n=100):
    return stats.Difference(mean=mean, se=sd / math.sqrt(n), n=n, sd=sd)


@pytest.mark.parametrize("fresh, eot, verdict", [
    (_diff(12, 30), _diff(10, 30), "masking"),
    (_diff(12, 30, 400), _diff(1, 25, 400), "no-masking"),   # EOT closes the gap: the fresh attack was just weak
    (_diff(1, 10, 400), _diff(0.5, 10, 400), "no-masking"),
    (_diff(1, 10), _diff(0.5, 10), "inconclusive"),         # a 5-point drop of whole-sample flips has SD 21.8
    (_diff(1, 40), _diff(0.5, 40), "inconclusive"),         # within 2 SE but too little power for 5 points
    (_diff(-10, 30), _diff(-9, 30), "inconclusive"),        # replay weaker than fresh noise: the attack failed
])
def test_verdicts(fresh, eot, verdict):
    got, power, detectable = decide(True, fresh, eot, 5.0)
    assert got == verdict
    assert decide(False, fresh, eot, 5.0)[0] == "deterministic"
    assert decide(True, fresh, eot, 5.0, input_dependent=True)[0] == "input-dependent"
    ref = min(fresh, eot, key=lambda d: d.mean)
    sd = max(ref.sd, 100 * math.sqrt(0.05 * 0.95))
    assert math.isclose(power, stats.power(5.0, sd, ref.n))
    assert math.isclose(detectable, 2.8416 * sd / math.sqrt(ref.n))


def test_config_resolves_defaults_and_rejects_bad_values():
    cfg = AuditConfig(dataset="cifar10")
    assert cfg.eps == 8 / 255 and cfg.step_size == cfg.eps / 4 and cfg.gradient == "full"
    for bad in (dict(keys="row"), dict(eps=-1.0), dict(norm="l1"), dict(purifier_stage="p"), dict(fresh_evals=0)):
        with pytest.raises(ValueError):
            AuditConfig(**bad)


def test_resume_reads_the_store_and_refuses_another_configuration(tmp_path, capsys, monkeypatch):
    store, out = tmp_path / "audit.json", tmp_path / "a.json"
    base = ["--model", "empirical.examples.defences:gaussian_noise", "--n-samples", "12", "--batch-size", "4",
            "--steps", "2", "--eot", "2", "--fresh-evals", "2", "--predict-samples", "0", "--quiet",
            "--results", str(store)]
    first = audit_cli.main(base + ["--json", str(out)])
    import empirical.audit as module
    monkeypatch.setattr(module, "audit_chunk", lambda *a, **k: pytest.fail("a stored chunk was recomputed"))
    again = audit_cli.main(base + ["--resume"])
    assert again.to_dict() == first.to_dict()
    with pytest.raises(SystemExit):
        audit_cli.main(base[:-2] + ["--results", str(store)])          # exists: needs --resume or --overwrite
    assert "--overwrite" in capsys.readouterr().err

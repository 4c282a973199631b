"""Table 1 end to end on tiny configurations: output schema, resume after SIGKILL, sharding, bad input."""
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from empirical import table1

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--purifiers", "gaussian", "diffpure", "--t-star", "2", "--n-samples", "6", "--batch-size", "3",
        "--steps", "2", "--eot", "2", "--eot-samples", "3", "--fresh-evals", "2", "--threads", "1", "--quiet"]


def _env():
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def test_tiny_table_json_schema(tmp_path):
    out = table1.main(TINY + ["--json", str(tmp_path / "t.json"), "--csv", str(tmp_path / "t.csv")])
    saved = json.loads((tmp_path / "t.json").read_text())
    assert saved["rows"] == json.loads(json.dumps(out["rows"]))
    assert [(r["method"], r["fix"]) for r in saved["rows"]] == [
        ("x + N(0, sigma^2 I)", "no"), ("x + N(0, sigma^2 I)", "yes"), ("DiffPure", "no"), ("DiffPure", "yes")]
    for row in saved["rows"]:
        for key in ("clean", "bpda", "eot"):
            cell = row[key]
            assert 0 <= cell["mean"] <= 100 and cell["se"] >= 0
            assert cell["n"] == (3 if key == "eot" else 6)
    assert saved["rows"][0]["clean"]["draws"] == 4          # fresh cells: R = 2 evaluations x 2 noise replicates
    assert (tmp_path / "t.csv").read_text().startswith("purifier,method,fix,t_star,clean,clean_se")
    assert saved["config"]["run"]["fresh_evals"] == 2 and saved["config"]["table"] == "1"
    assert len(saved["tests"]) == 2                                   # one block per stochastic purifier
    for block in saved["tests"]:
        assert block["tests"]["bpda"]["n"] == 6 and block["tests"]["eot"]["n"] == 3
        assert 0 <= block["tests"]["bpda"]["p"] <= block["tests"]["bpda"]["p_adjusted"] <= 1
        dec = block["decomposition"]
        assert abs(dec["drop"]["mean"] - (dec["restored"]["mean"] - dec["lost"]["mean"])) < 1e-9


@pytest.mark.parametrize("bad, message", [
    (["--eps", "0"], "--eps must be in (0, 1]"),
    (["--eps", "2"], "--eps must be in (0, 1]"),
    (["--t-star", "1001"], "--t-star must be in [0, 1000]"),
    (["--purifiers", "magic"], "unknown purifier 'magic'"),
    (["--dataset", "svhn"], "invalid choice: 'svhn'"),
    (["--dataset", "cifar10"], "needs --data, --purifier-model and --classifier"),
    (["--steps", "-1"], "--steps must be positive"),
    (["--resume"], "--resume needs --results"),
    (["--noise-keys", "global"], "invalid choice: 'global'"),
])
def test_bad_arguments_are_rejected_clearly(bad, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        table1.main(bad)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_missing_cifar_folder_names_what_is_missing(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        table1.main(["--dataset", "cifar10", "--data", str(tmp_path / "nope"), "--purifier-model",
                     str(tmp_path / "m"), "--classifier", str(tmp_path / "c.pt")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "CIFAR-10" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("flag", ["--results", "--json", "--csv"])
def test_output_path_in_missing_folder_fails_before_work(tmp_path, capsys, flag):
    with pytest.raises(SystemExit) as exit_info:
        table1.main(TINY + [flag, str(tmp_path / "missing" / "r.json")])
    assert exit_info.value.code == 2 and "does not exist" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def _run(args, **kw):
    return subprocess.run([sys.executable, "-m", "empirical.table1", *args], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, **kw)


def test_resume_after_sigkill_gives_identical_results(tmp_path):
    args = TINY + ["--n-samples", "12", "--no-predict"]
    reference = tmp_path / "ref.json"
    assert _run(args + ["--json", str(reference)]).returncode == 0
    store = tmp_path / "store.json"
    proc = subprocess.Popen([sys.executable, "-m", "empirical.table1", *args, "--results", str(store)],
                            cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen = 0
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if store.exists():
            records = json.loads(store.read_text())["records"]     # never truncated: always parses
            seen = len(records)
            if seen >= 2:
                proc.send_signal(signal.SIGKILL)
                break
        time.sleep(0.05)
    proc.wait()
    assert 2 <= seen < 8, f"killed after {seen} of 8 chunks"
    resumed = tmp_path / "resumed.json"
    done = _run(args + ["--results", str(store), "--resume", "--json", str(resumed)])
    assert done.returncode == 0, done.stderr
    a, b = json.loads(reference.read_text()), json.loads(resumed.read_text())
    assert a["records"] == b["records"] and a["rows"] == b["rows"]
    other = _run(args + ["--results", str(store), "--resume", "--seed", "1"])
    assert other.returncode != 0 and "another configuration" in other.stderr


TWO_GPUS = __import__("torch").cuda.is_available() and __import__("torch").cuda.device_count() >= 2


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not TWO_GPUS, reason="nccl needs two CUDA devices"))])
def test_two_process_sharding_matches_one_process(tmp_path, device):
    """torchrun with 2 processes (gloo on CPU, nccl on CUDA: one code path) gives the single-process records."""
    args = TINY + ["--no-predict", "--device", device]
    single, sharded = tmp_path / "one.json", tmp_path / "two.json"
    assert _run(args + ["--json", str(single)]).returncode == 0
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "empirical.table1", *args, "--json", str(sharded)],
                         cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    a, b = json.loads(single.read_text()), json.loads(sharded.read_text())
    assert a["records"] == b["records"] and a["rows"] == b["rows"]


def test_same_rows_for_any_thread_count_and_chunking(tmp_path):
    import torch
    threads = torch.get_num_threads()
    base = ["--purifiers", "diffpure", "--t-star", "2", "--n-samples", "4", "--steps", "1", "--eot", "2",
            "--eot-samples", "2", "--fresh-evals", "2", "--no-predict", "--quiet", "--unet-batch", "2"]
    try:
        one = table1.main(base + ["--batch-size", "4", "--threads", "1"])
        two = table1.main(base + ["--batch-size", "4", "--threads", "2"])
        small = table1.main(base + ["--batch-size", "2", "--threads", "1"])
    finally:
        torch.set_num_threads(threads)
    assert one["records"] == two["records"]
    assert one["rows"] == small["rows"]       # per-sample keys + fixed UNet micro-batches


def test_several_diffusion_purifiers_keep_separate_cells():
    out = table1.main(["--purifiers", "diffpure", "revpure", "ddim", "--t-star", "2", "--n-samples", "2",
                       "--steps", "1", "--eot", "1", "--eot-samples", "1", "--fresh-evals", "1", "--no-predict",
                       "--quiet"])
    assert [(r["method"], r["fix"]) for r in out["rows"]] == [
        ("DiffPure", "no"), ("DiffPure", "yes"), ("RevPure", "no"), ("RevPure", "yes"),
        ("DDIM RevPure", "n/a")]
    assert len([k for k in out["records"] if "#r" not in k]) == 3        # and their noise replicates


def test_replicates_pool_per_sample_and_the_first_replicate_is_the_plain_run(tmp_path):
    args = ["--purifiers", "gaussian", "--n-samples", "4", "--batch-size", "4", "--steps", "1", "--eot-samples", "2",
            "--fresh-evals", "2", "--no-predict", "--quiet"]
    one, two = table1.main(args + ["--replicates", "1"]), table1.main(args + ["--replicates", "2"])
    key = next(iter(one["records"]))
    assert set(two["records"]) == {key, key + "#r1"}
    assert two["records"][key] == one["records"][key]            # replicate 0 is the run seed itself
    assert two["records"][key + "#r1"] != two["records"][key]    # replicate 1 has keys of its own
    bpda = two["rows"][0]["bpda"]
    assert bpda["n"] == 4 and bpda["draws"] == 4                  # the sample stays the unit: 2 replicates x R=2
    assert two["tests"][0]["tests"]["bpda"]["n"] == 4


def test_stdout_has_plain_names_verdict_lines_and_no_nan(tmp_path):
    """A one-sample run has no SE: the table says so instead of printing nan; no internal key reaches stdout,
    and every stochastic purifier ends with a verdict line."""
    run = _run(["--purifiers", "gaussian", "--n-samples", "1", "--batch-size", "1", "--steps", "1",
                "--eot-samples", "1", "--fresh-evals", "2", "--threads", "1", "--quiet", "--no-store",
                "--eps", "8/255"])
    assert run.returncode == 0, run.stderr[-2000:]
    out = run.stdout
    assert not re.search(r"\bnan\b|[+-]inf\b|\binf\b", out.lower())
    assert "|x + N" not in out and "|t*=" not in out and "toy Gaussian sigma=0.450|" not in out
    verdict = out[out.index("Verdict"):].splitlines()
    assert verdict[1].startswith("  Gaussian noise") and ("undecided" in verdict[1] or "masking" in verdict[1])
    assert "WARNING: at eps 8/255 the undefended classifier keeps" in run.stderr
    assert "default eps" not in run.stderr                       # the preset's note is for the preset only


def test_help_shows_each_default_as_a_number(capsys):
    with pytest.raises(SystemExit):
        table1.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "all 450 on digits, 512 on cifar10, 200 on imagenet" in text
    assert "(default 5 on digits, 10 on cifar10, 10 on imagenet; --full: 50)" in text
    assert "32 on digits, 64 on cifar10, 20 on imagenet" in text and "default 150" in text
    assert "the dataset preset" not in text and "default torch" not in text


def test_redirected_stdout_holds_only_the_table_and_its_legend(tmp_path):
    run = _run(TINY[:-1] + ["--no-predict"])          # progress on: it must go to stderr
    assert run.returncode == 0, run.stderr[-2000:]
    lines = run.stdout.splitlines()
    assert max(len(line) for line in lines) <= 120
    assert lines[0].startswith("Purifier model") and any(line.startswith("Legend") for line in lines)
    assert "%|" not in run.stdout and "%|" in run.stderr        # tqdm's bar went to stderr
    assert "Table on digits" in run.stderr and "Table on digits" not in run.stdout


def test_resume_refuses_another_classifier_or_data_content(tmp_path):
    """The store's digest holds content identities, so the same path with other content is refused."""
    from empirical.harness import config as cfg
    from empirical.harness.setup import _identities
    from empirical.harness.sharding import World
    from empirical.harness.store import ConfigMismatchError
    from empirical.harness.tables import open_store
    clf = tmp_path / "clf.pt"
    clf.write_bytes(b"weights one")
    data = tmp_path / "data"
    data.mkdir()
    (data / "test_batch").write_bytes(b"batch")
    config = cfg.Config(table="1", data=cfg.DataConfig("cifar10", str(data), str(clf), str(clf)),
                        output=cfg.OutputConfig(results=str(tmp_path / "r.json")))
    first = _identities(config)
    open_store(config, {"identity": first}, World()).put("c/0", [0], {"ok": [True]})
    clf.write_bytes(b"weights two")
    second = _identities(config)
    assert second["classifier"] != first["classifier"]
    resumed = cfg.replace(config, output={"resume": True})
    with pytest.raises(ConfigMismatchError, match="classifier"):
        open_store(resumed, {"identity": second}, World())

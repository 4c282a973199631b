"""The store and outputs through an entry point's command line: resume under other code, the default store
in the cache folder, SIGINT / SIGTERM, a redirected /dev/stdout, and bounds refused before any work."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import TINY
from empirical import identity, table2
from empirical.harness import config as cfg

ROOT = Path(__file__).resolve().parents[1]
DDIM = TINY + ["--purifiers", "ddim"]


def _stderr_lines(capsys):
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def test_resume_under_edited_code_is_refused_unless_allowed(tiny_digits, tmp_path, monkeypatch, capsys):
    store = tmp_path / "r.json"
    table2.main(DDIM + ["--results", str(store)])
    real = identity.source_identity()
    edited = {**real, "files": {**real["files"], "empirical/attacks.py": "0" * 64}}
    monkeypatch.setattr(identity, "source_identity", lambda extra_modules=(): edited)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        table2.main(DDIM + ["--results", str(store), "--resume"])
    lines = [line for line in _stderr_lines(capsys) if "error:" in line]         # after argparse's usage
    assert exit_.value.code == 2 and len(lines) == 1
    assert "empirical/attacks.py" in lines[0] and "--allow-code-change" in lines[0]
    out = tmp_path / "b.json"
    table2.main(DDIM + ["--results", str(store), "--resume", "--allow-code-change", "--json", str(out)])
    written = json.loads(out.read_text())
    assert written["config"]["output"]["allow_code_change"] is True
    assert written["code"]["source_sha256"] == edited["source_sha256"] and written["code"]["versions"]["torch"]
    saved = json.loads(store.read_text())
    assert saved["code"]["files"]["empirical/attacks.py"] == "0" * 64
    assert any("empirical/attacks.py" in d for d in saved["code_changes"][-1]["differences"])


def test_default_store_resumes_a_killed_run_and_other_configurations_never_touch_it(tiny_digits, tmp_path,
                                                                                    monkeypatch, capsys):
    monkeypatch.delenv("DISSECT_PURIFICATION_NO_STORE")
    stores = identity.cache_dir() / "stores"
    reference = table2.main(DDIM + ["--no-store"])
    assert not stores.exists() or not list(stores.glob("*.json"))
    from empirical.harness import tables
    real, calls = tables.run_chunk, []

    def killed_on_second_chunk(*args, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kw)

    monkeypatch.setattr(tables, "run_chunk", killed_on_second_chunk)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        table2.main(DDIM)
    lines = _stderr_lines(capsys)
    [path] = list(stores.glob("*.json"))
    assert exit_.value.code == 130 and f"results store: {path} (new" in lines[0]
    assert lines[-1].endswith(f"interrupted by SIGINT; finished chunks are saved in {path}: rerun the same "
                              "command (with --resume when you gave --results) to continue")
    assert len(json.loads(path.read_text())["records"]) == 1
    monkeypatch.setattr(tables, "run_chunk", real)
    resumed = table2.main(DDIM)
    assert f"results store: {path} (resuming it" in _stderr_lines(capsys)[0]
    assert resumed["records"] == reference["records"] and resumed["rows"] == reference["rows"]
    table2.main(DDIM + ["--seed", "1"])
    assert len(list(stores.glob("*.json"))) == 2 and json.loads(path.read_text())["records"].keys() == \
        {f"{next(iter(reference['records']))}/0", f"{next(iter(reference['records']))}/1"}


@pytest.mark.parametrize("argv, message", [
    (["--unet-batch", "100000000"], r"--unet-batch 100000000 pads every UNet call.*GB"),
    (["--toy-sigma", "1e300"], r"--toy-sigma must be a finite number in \(0, 100\]"),
    (["--eot", "1000000"], "--eot must be at most 1000"),
    (["--steps", "1000000000"], "--steps must be at most"),
])
def test_numbers_too_large_are_refused_before_any_work(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        cfg.parse(table2.SPEC, ["--no-store"] + argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("error:") == 1
    assert __import__("re").search(message, err), err


def test_run_main_turns_a_many_line_error_into_one_line(capsys):
    from empirical.harness.report import run_main

    def fails():
        raise ValueError("first line names the fix\n  File 'x', line 3\n    more internals")

    with pytest.raises(SystemExit) as exit_:
        run_main(fails, "prog")
    assert exit_.value.code == 2 and capsys.readouterr().err == "prog: error: first line names the fix\n"


SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from diffusers import DDPMScheduler
from conftest import tiny_unet
from empirical import checkpoints, table2
checkpoints.load_digits_ddpm = lambda ema=True, weights_dir=None: (tiny_unet(size=16),
                                                                  DDPMScheduler(num_train_timesteps=1000))
table2.main(sys.argv[1:])
"""


def _tiny_table2(args, **kw):
    script = SCRIPT.format(tests=str(ROOT / "tests"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return [sys.executable, "-c", script, *args], dict(cwd=ROOT, env=env, **kw)


def test_json_to_a_redirected_stdout_keeps_the_table(tmp_path):
    out = tmp_path / "out.txt"
    cmd, kw = _tiny_table2(DDIM + ["--json", "/dev/stdout"])
    with open(out, "w") as handle:
        run = subprocess.run(cmd, stdout=handle, stderr=subprocess.PIPE, text=True, timeout=300, **kw)
    assert run.returncode == 0, run.stderr[-2000:]
    text = out.read_text()
    table, _, rest = text.partition("\n{")
    assert "DDIM RevPure" in table and json.loads("{" + rest)["rows"][0]["method"] == "DDIM RevPure"


@pytest.mark.slow
@pytest.mark.parametrize("sig, code, name", [(signal.SIGINT, 130, "SIGINT"), (signal.SIGTERM, 143, "SIGTERM")])
def test_a_signal_ends_the_run_in_one_line_and_the_store_resumes(tmp_path, sig, code, name):
    args = TINY + ["--n-samples", "16", "--n-clean", "16", "--batch-size", "2", "--purifiers", "ddim"]
    reference = tmp_path / "ref.json"
    cmd, kw = _tiny_table2(args + ["--json", str(reference)])
    assert subprocess.run(cmd, capture_output=True, timeout=600, **kw).returncode == 0
    store = tmp_path / "store.json"
    cmd, kw = _tiny_table2(args + ["--results", str(store)])
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, **kw)
    seen, deadline = 0, time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if store.exists() and (seen := len(json.loads(store.read_text())["records"])) >= 2:
            proc.send_signal(sig)
            break
        time.sleep(0.05)
    err = proc.communicate(timeout=120)[1]
    assert 2 <= seen < 8 and proc.returncode == code, err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith(("Table on", "Purifiers",
                                                                                         "digits", "weights", "Fixed"))]
    assert len(lines) == 1 and f"interrupted by {name}" in lines[0] and str(store) in lines[0], err
    resumed = tmp_path / "resumed.json"
    cmd, kw = _tiny_table2(args + ["--results", str(store), "--resume", "--json", str(resumed)])
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(reference.read_text())["records"] == json.loads(resumed.read_text())["records"]


@pytest.mark.slow
def test_a_sharded_run_cannot_start_on_a_store_a_single_process_holds(tmp_path):
    from empirical.harness.store import ResultStore
    store = tmp_path / "store.json"
    cmd, kw = _tiny_table2(DDIM + ["--results", str(store)])
    assert subprocess.run(cmd, capture_output=True, timeout=600, **kw).returncode == 0
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    script = Path(tmp_path / "run.py")
    script.write_text(cmd[2])
    with ResultStore.open(store, {"held": True}, overwrite=True):
        run = subprocess.run(launcher + [str(script)] + DDIM + ["--results", str(store), "--overwrite"],
                             capture_output=True, text=True, timeout=600, **kw)
    refusals = [line for line in run.stderr.splitlines() if "error: results store" in line and "in use by pid" in line]
    assert run.returncode != 0 and len(refusals) == 2, run.stderr[-3000:]      # both ranks stop, one line each
    assert json.loads(store.read_text())["config"] == {"held": True}            # the holder's store is untouched

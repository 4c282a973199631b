"""Local single-thread worker processes: when they are used, and that they give one process's records."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from empirical.harness.workers import MALLOC_ENV, _environment, available_cpus, worker_count

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def no_thread_choice(monkeypatch):
    for key in ("OMP_NUM_THREADS", "WORLD_SIZE", "DISSECT_PURIFICATION_WORKERS"):
        monkeypatch.delenv(key, raising=False)


def test_automatic_count_is_one_per_cpu_unless_the_user_chose_threads(no_thread_choice, monkeypatch):
    assert worker_count(None, None, "cpu", 8) == min(available_cpus(), 8)
    assert worker_count(None, 2, "cpu", 8) == 1                        # --threads given: one process
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert worker_count(None, None, "cpu", 8) == 1                     # OMP_NUM_THREADS given: honoured
    assert worker_count(3, None, "cpu", 8) == 3                        # an explicit --workers wins


def test_never_nested_and_not_on_cuda(no_thread_choice, monkeypatch):
    assert worker_count(None, None, "cuda", 8) == 1
    monkeypatch.setenv("WORLD_SIZE", "2")                              # inside torchrun or a worker
    assert worker_count(4, None, "cpu", 8) == 1


def test_worker_environment_is_one_thread_per_rank_and_keeps_the_users_malloc_settings(monkeypatch):
    monkeypatch.setenv("MALLOC_TOP_PAD_", "123")
    env = _environment(1, 2, 29500, None)
    assert (env["RANK"], env["WORLD_SIZE"], env["OMP_NUM_THREADS"]) == ("1", "2", "1")
    assert env["MALLOC_TOP_PAD_"] == "123" and env["MALLOC_MMAP_THRESHOLD_"] == MALLOC_ENV["MALLOC_MMAP_THRESHOLD_"]


def test_workers_must_be_positive_and_cpu_only(capsys):
    from empirical import table1
    for bad, message in ((["--workers", "0"], "--workers must be positive"),
                         (["--workers", "2", "--device", "cuda"], "--workers splits a CPU run")):
        with pytest.raises(SystemExit):
            table1.main(bad)
        assert message in capsys.readouterr().err


@pytest.mark.slow
def test_two_workers_give_the_records_of_one_process(tmp_path):
    args = ["--purifiers", "gaussian", "diffpure", "--t-star", "2", "--n-samples", "6", "--batch-size", "3",
            "--steps", "2", "--eot", "2", "--eot-samples", "3", "--fresh-evals", "2", "--quiet", "--no-store"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("OMP_NUM_THREADS", None)
    env.pop("DISSECT_PURIFICATION_WORKERS", None)
    runs = {}
    for name, extra in (("one", ["--workers", "1", "--threads", "1"]), ("two", ["--workers", "2"])):
        out = tmp_path / f"{name}.json"
        run = subprocess.run([sys.executable, "-m", "empirical.table1", *args, *extra, "--json", str(out)], cwd=ROOT,
                             env=env, capture_output=True, text=True, timeout=900)
        assert run.returncode == 0, run.stderr[-2000:]
        runs[name] = (json.loads(out.read_text()), run.stdout)
    assert runs["one"][0]["records"] == runs["two"][0]["records"]
    assert runs["one"][0]["rows"] == runs["two"][0]["rows"]
    assert "Verdict" in runs["two"][1]                                 # rank 0 printed the table


def test_a_failing_rank_stops_the_others_and_its_status_and_output_are_reported(tmp_path, capfd):
    """Rank 1 fails at once while rank 0 would wait (as in a collective): the launcher stops rank 0, shows
    rank 1's output and returns rank 1's status instead of hanging."""
    from empirical.harness.workers import run_workers
    pkg = tmp_path / "fakeentry"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "main.py").write_text(
        "import os, sys, time\n"
        "if os.environ['RANK'] == '1':\n"
        "    print('rank one broke', file=sys.stderr); sys.exit(3)\n"
        "time.sleep(120)\n")
    import sys as _sys
    _sys.path.insert(0, str(tmp_path))
    old = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = f"{tmp_path}{os.pathsep}{old}"
    try:
        import time
        start = time.monotonic()
        code = run_workers("fakeentry.main", [], 2)
        assert time.monotonic() - start < 60
    finally:
        os.environ["PYTHONPATH"] = old
        _sys.path.remove(str(tmp_path))
    assert code == 3
    assert "worker 1 of 2 failed (exit 3)" in capfd.readouterr().err

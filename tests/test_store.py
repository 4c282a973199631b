"""The results store: tampering, mixing, locking, overwriting, per-rank merging and bad files."""
import json
import os
import subprocess
import sys

import pytest

from empirical.harness.records import RecordError
from empirical.harness.store import ConfigMismatchError, ResultStore, StoreError

VIEW = {"table": "1", "run": {"seed": 0}, "sizes": {"n_samples": 4}}


def _filled(path, view=VIEW):
    store = ResultStore.open(path, view)
    store.put("cell/0", [0, 1], {"ok": [True, False]})
    store.put("cell/1", [2, 3], {"ok": [True, True]})
    return store


def test_round_trip_and_resume(tmp_path):
    path = tmp_path / "r.json"
    _filled(path)
    again = ResultStore.open(path, dict(reversed(list(VIEW.items()))), resume=True)
    assert again.get("cell/0", [0, 1]) == {"ok": [True, False]} and again.has("cell/1")


def test_mismatch_names_each_option_on_its_own_line(tmp_path):
    path = tmp_path / "r.json"
    _filled(path)
    with pytest.raises(ConfigMismatchError) as err:
        ResultStore.open(path, {**VIEW, "run": {"seed": 1}}, resume=True)
    assert "  run.seed: stored 0, now 1" in str(err.value).splitlines()


@pytest.mark.parametrize("tamper, message", [
    (lambda r: r.__setitem__("cell/1", {}), "not a complete record"),
    (lambda r: r.__setitem__("cell/1", dict(r["cell/0"])), "belongs to chunk 'cell/0'"),
    (lambda r: r["cell/1"]["data"]["ok"].__setitem__(0, False), "checksum"),
])
def test_tampered_records_are_refused_naming_the_chunk(tmp_path, tamper, message):
    path = tmp_path / "r.json"
    _filled(path)
    saved = json.loads(path.read_text())
    tamper(saved["records"])
    path.write_text(json.dumps(saved))
    with pytest.raises(RecordError, match=message) as err:
        ResultStore.open(path, VIEW, resume=True)
    assert "cell/1" in str(err.value)


def test_records_of_another_sample_plan_are_refused(tmp_path):
    path = tmp_path / "r.json"
    _filled(path)
    store = ResultStore.open(path, VIEW, resume=True)
    with pytest.raises(RecordError, match="another sample plan"):
        store.get("cell/0", [5, 6])


def test_existing_store_needs_overwrite_and_missing_store_cannot_resume(tmp_path):
    path = tmp_path / "r.json"
    _filled(path)
    with pytest.raises(StoreError, match="--overwrite"):
        ResultStore.open(path, VIEW)
    assert json.loads(path.read_text())["records"]          # untouched
    assert not ResultStore.open(path, VIEW, overwrite=True).has("cell/0")
    with pytest.raises(StoreError, match="no results store"):
        ResultStore.open(tmp_path / "typo.json", VIEW, resume=True)


def test_resume_merges_per_rank_stores_in_any_process_count(tmp_path):
    path = tmp_path / "r.json"
    with ResultStore.open(path, VIEW, rank=0, world_size=2) as a, \
            ResultStore.open(path, VIEW, rank=1, world_size=2) as b:
        a.put("cell/0", [0, 1], {"ok": [True, False]})
        b.put("cell/1", [2, 3], {"ok": [True, True]})
    with ResultStore.open(path, VIEW, resume=True) as single:
        assert single.has("cell/0") and single.has("cell/1")
    with ResultStore.open(path, VIEW, resume=True, rank=0, world_size=3), \
            ResultStore.open(path, VIEW, resume=True, rank=2, world_size=3) as three:
        assert three.has("cell/0") and three.has("cell/1")


@pytest.mark.parametrize("content, message", [
    (b'{"config": ', "not valid JSON"), (b"\xff\xfe\x00", "not UTF-8"), (b"[1, 2]", "not a results store"),
    (b'{"records": {}}', "not a results store")])
def test_bad_store_files_get_one_clear_error(tmp_path, content, message):
    path = tmp_path / "r.json"
    path.write_bytes(content)
    with pytest.raises(StoreError, match=message):
        ResultStore.open(path, VIEW, resume=True)


def test_a_folder_is_not_a_store(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(StoreError, match="folder"):
        ResultStore.open(tmp_path / "d", VIEW, resume=True)


def test_second_writer_is_refused_naming_the_holder(tmp_path):
    path = tmp_path / "r.json"
    held = _filled(path)
    code = ("import sys; from empirical.harness.store import ResultStore, StoreError\n"
            f"try:\n    ResultStore.open({str(path)!r}, {VIEW!r}, resume=True)\n"
            "except StoreError as e:\n    print(e); sys.exit(3)\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 3 and f"pid {os.getpid()}" in run.stdout and held.has("cell/0")


def test_leftover_temporaries_are_removed_and_symlinks_followed(tmp_path):
    real = tmp_path / "real.json"
    _filled(real)
    (tmp_path / ".real.json.abc_1234.tmp").write_text("partial")                # mkstemp's 8-character name
    (tmp_path / ".real.json.rank1of2.abc_1234.tmp").write_text("another rank's")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    store = ResultStore.open(link, VIEW, resume=True)
    store.put("cell/2", [4], {"ok": [False]})
    assert link.is_symlink() and "cell/2" in json.loads(real.read_text())["records"]
    assert not (tmp_path / ".real.json.abc_1234.tmp").exists()
    assert (tmp_path / ".real.json.rank1of2.abc_1234.tmp").exists()          # not this writer's file


def test_read_only_store_is_refused_not_replaced(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root can write read-only files")
    path = tmp_path / "r.json"
    _filled(path)
    os.chmod(path, 0o444)
    with pytest.raises(StoreError, match="read-only"):
        ResultStore.open(path, VIEW, resume=True)


def test_nan_is_written_as_null(tmp_path):
    from empirical.results import atomic_write_json
    atomic_write_json(tmp_path / "a.json", {"se": float("nan"), "x": [1.0, float("inf")]})
    assert json.loads((tmp_path / "a.json").read_text(), parse_constant=lambda c: pytest.fail(c)) == \
        {"se": None, "x": [1.0, None]}


def test_atomic_write_leaves_no_temporary_and_keeps_old_file_on_failure(tmp_path):
    from empirical.results import atomic_write_json
    path = tmp_path / "a.json"
    atomic_write_json(path, {"v": 1})
    with pytest.raises(TypeError):
        atomic_write_json(path, {"v": object()})
    assert json.loads(path.read_text()) == {"v": 1} and [p.name for p in tmp_path.iterdir()] == ["a.json"]

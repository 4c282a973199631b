import json

import pytest

from empirical.results import ConfigMismatchError, ResultStore, atomic_write_json, config_digest


def test_store_round_trip_and_resume(tmp_path):
    path = tmp_path / "r.json"
    store = ResultStore.open(path, {"a": 1, "b": [1, 2]})
    store.put("x/0", {"ok": [True, False]})
    again = ResultStore.open(path, {"b": [1, 2], "a": 1}, resume=True)
    assert again.has("x/0") and again.get("x/0") == {"ok": [True, False]}
    assert json.loads(path.read_text())["config_digest"] == config_digest({"a": 1, "b": [1, 2]})


def test_resume_refuses_other_configuration(tmp_path):
    path = tmp_path / "r.json"
    ResultStore.open(path, {"eps": 0.1}).put("k", 1)
    with pytest.raises(ConfigMismatchError, match="eps: 0.1 -> 0.2"):
        ResultStore.open(path, {"eps": 0.2}, resume=True)


def test_without_resume_starts_over(tmp_path):
    path = tmp_path / "r.json"
    ResultStore.open(path, {"a": 1}).put("k", 1)
    assert not ResultStore.open(path, {"a": 1}).has("k")


def test_corrupt_file_is_reported(tmp_path):
    path = tmp_path / "r.json"
    path.write_text('{"config": ')
    with pytest.raises(ValueError, match="not valid JSON"):
        ResultStore.open(path, {}, resume=True)


def test_atomic_write_leaves_no_temporary_and_refuses_missing_folder(tmp_path):
    atomic_write_json(tmp_path / "a.json", {"v": 1})
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        atomic_write_json(tmp_path / "missing" / "a.json", {})


def test_failed_serialisation_keeps_old_file(tmp_path):
    path = tmp_path / "a.json"
    atomic_write_json(path, {"v": 1})
    with pytest.raises(TypeError):
        atomic_write_json(path, {"v": object()})
    assert json.loads(path.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_written_files_get_ordinary_permissions(tmp_path):
    import os
    atomic_write_json(tmp_path / "a.json", {"v": 1})
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o666 & ~umask

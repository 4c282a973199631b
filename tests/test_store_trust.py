"""What a careless or hostile user can do to a results store, its outputs and the data loaders, and what
each gets: code and record identity, one lock per path, --overwrite, output paths, NaN, safe loaders."""
import json
import os
import pickle
import subprocess
import sys

import pytest
import torch

from empirical import checkpoints, data
from empirical.harness import store as st
from empirical.harness.records import RecordError
from empirical.harness.store import CodeChangeError, ResultStore, StoreError

VIEW = {"table": "1", "run": {"seed": 0}, "sizes": {"n_samples": 4}}
CODE = {"version": "0.1.0", "source_sha256": "a" * 64, "files": {"empirical/attacks.py": "1" * 64},
        "versions": {"python": "3.11", "torch": "2.13.0"}, "extra": {}}
EDITED = {**CODE, "source_sha256": "b" * 64, "files": {"empirical/attacks.py": "2" * 64}}


def _store(path, view=VIEW, code=CODE, **kw):
    with ResultStore.open(path, view, code=code, **kw) as store:
        store.put("cell/0", [0, 1], {"ok": [True, False]})
    return path


def test_resume_under_other_code_is_refused_in_one_line_and_allowed_change_is_recorded(tmp_path):
    path = _store(tmp_path / "r.json")
    with pytest.raises(CodeChangeError) as err:
        ResultStore.open(path, VIEW, code=EDITED, resume=True)
    message = str(err.value)
    assert "\n" not in message and "empirical/attacks.py" in message and "--allow-code-change" in message
    with ResultStore.open(path, VIEW, code=EDITED, resume=True, allow_code_change=True) as store:
        assert store.get("cell/0", [0, 1]) == {"ok": [True, False]}
    saved = json.loads(path.read_text())
    assert saved["code"]["files"] == EDITED["files"]
    change = saved["code_changes"][-1]
    assert change["previous"]["source_sha256"] == "a" * 64 and change["records"] == ["cell/0"]
    assert any("empirical/attacks.py" in d for d in change["differences"])


def test_library_versions_are_part_of_the_code(tmp_path):
    path = _store(tmp_path / "r.json")
    newer = {**CODE, "versions": {**CODE["versions"], "torch": "2.14.1"}}
    with pytest.raises(CodeChangeError, match="torch 2.13.0 -> 2.14.1"):
        ResultStore.open(path, VIEW, code=newer, resume=True)


def test_a_store_records_the_running_code_by_default(tmp_path):
    from empirical.identity import source_identity
    with ResultStore.open(tmp_path / "r.json", VIEW):
        pass
    assert json.loads((tmp_path / "r.json").read_text())["code"] == source_identity()


def test_a_record_copied_from_another_configurations_store_is_refused(tmp_path):
    seed0, seed1 = _store(tmp_path / "s0.json"), _store(tmp_path / "s1.json", {**VIEW, "run": {"seed": 1}})
    saved0, saved1 = json.loads(seed0.read_text()), json.loads(seed1.read_text())
    saved0["records"]["cell/0"] = saved1["records"]["cell/0"]          # same chunk key, other store
    saved0["records"]["cell/0"]["data"]["ok"] = [False, False]
    saved1["records"]["cell/0"]["data"]["ok"] = [False, False]
    seed0.write_text(json.dumps(saved1 | {"config": saved0["config"], "config_digest": saved0["config_digest"]}))
    with pytest.raises(RecordError, match="cell/0.*another configuration"):
        ResultStore.open(seed0, VIEW, code=CODE, resume=True)


def test_a_nan_measurement_is_stored_and_read_back_not_called_tampering(tmp_path):
    path = tmp_path / "r.json"
    with ResultStore.open(path, VIEW, code=CODE) as store:
        store.put("cell/0", [0], {"sigma": [float("nan")], "ratio": [float("inf"), -float("inf"), 0.5]})
    json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"{c} in the store file"))
    with ResultStore.open(path, VIEW, code=CODE, resume=True) as again:
        got = again.get("cell/0", [0])
    assert got["sigma"][0] != got["sigma"][0] and got["ratio"] == [float("inf"), -float("inf"), 0.5]


@pytest.mark.parametrize("first, second", [((0, 1), (0, 2)), ((0, 2), (0, 1))])
def test_one_lock_per_path_for_a_single_process_and_a_sharded_run(tmp_path, first, second):
    """(rank, world size): a single process (0, 1) and rank 0 of a sharded run (0, 2) exclude each other."""
    path = tmp_path / "r.json"
    (rank, size), (rank2, size2) = first, second
    with ResultStore.open(path, VIEW, code=CODE, rank=rank, world_size=size):
        code = ("import sys; from empirical.harness.store import ResultStore, StoreError\n"
                f"try:\n    ResultStore.open({str(path)!r}, {VIEW!r}, overwrite=True, rank={rank2}, "
                f"world_size={size2})\nexcept StoreError as e:\n    print(e); sys.exit(3)\n")
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 3 and "in use by pid" in run.stdout, run.stdout + run.stderr


def test_close_and_a_failed_open_release_the_lock(tmp_path):
    path = _store(tmp_path / "r.json")
    with pytest.raises(StoreError):
        ResultStore.open(path, {**VIEW, "run": {"seed": 9}}, code=CODE, resume=True)   # a notebook catches this
    with pytest.raises(RuntimeError):
        with ResultStore.open(path, VIEW, code=CODE, resume=True):
            raise RuntimeError("a cell failed")
    store = ResultStore.open(path, VIEW, code=CODE, resume=True)                      # not locked out
    store.close()
    store.close()
    assert ResultStore.open(path, VIEW, code=CODE, resume=True).has("cell/0")


def test_overwrite_removes_rank_files_and_refuses_a_file_that_is_no_store(tmp_path):
    path = tmp_path / "r.json"
    for rank in (0, 1):
        with ResultStore.open(path, VIEW, code=CODE, rank=rank, world_size=2) as shard:
            shard.put(f"cell/{rank}", [rank], {"ok": [True]})
    assert len(st.rank_files(path)) == 2
    with ResultStore.open(path, VIEW, code=CODE, overwrite=True):
        pass
    assert st.rank_files(path) == []
    with ResultStore.open(path, VIEW, code=CODE, resume=True) as fresh:
        assert fresh.records == {}
    table = tmp_path / "table1.json"
    table.write_text(json.dumps({"config": {}, "rows": [1, 2]}))
    with pytest.raises(StoreError, match="not a results store"):
        ResultStore.open(table, VIEW, code=CODE, overwrite=True)
    with pytest.raises(ValueError, match="not a results store"):
        st.check_outputs(_args(results=str(table), overwrite=True))
    assert json.loads(table.read_text()) == {"config": {}, "rows": [1, 2]}


def _args(**kw):
    from argparse import Namespace
    return Namespace(**{"results": None, "json": None, "csv": None, "png": None, "resume": False,
                        "overwrite": False, **kw})


def test_device_nodes_fifos_and_folders_are_refused_up_front(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    (tmp_path / "dir").mkdir()
    for flag, path, kind in (("json", "/dev/null", "device node"), ("results", str(fifo), "FIFO"),
                             ("csv", str(fifo), "FIFO"), ("json", str(tmp_path / "dir"), "directory")):
        with pytest.raises(ValueError, match=kind) as err:
            st.check_outputs(_args(**{flag: path, "resume": flag == "results"}))
        assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="device node"):
        from empirical.results import atomic_write_json
        atomic_write_json("/dev/null", {"a": 1})
    assert os.path.exists("/dev/null") and not os.path.isfile("/dev/null")
    st.check_outputs(_args(json="-", csv="/dev/stdout"))           # standard output is a valid destination
    with pytest.raises(ValueError, match="standard output"):
        st.check_outputs(_args(results="/dev/stdout"))


@pytest.mark.parametrize("schema, level", [(99, "store"), (2, "record")])
def test_schemas_outside_the_known_range_are_refused_naming_both_versions(tmp_path, schema, level):
    path = _store(tmp_path / "r.json")
    saved = json.loads(path.read_text())
    if level == "store":
        saved["schema"] = schema
    else:
        saved["records"]["cell/0"]["schema"] = schema
    path.write_text(json.dumps(saved))
    with pytest.raises(ValueError, match=f"schema {schema}.*reads schema 3") as err:
        ResultStore.open(path, VIEW, code=CODE, resume=True)
    assert "without --resume" not in str(err.value) and "--overwrite" in str(err.value)
    st.check_outputs(_args(results=str(path), overwrite=True))       # the fix it names is accepted
    with ResultStore.open(path, VIEW, code=CODE, overwrite=True):
        pass


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def test_a_cifar_batch_that_holds_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    with open(tmp_path / "test_batch", "wb") as f:
        pickle.dump({b"data": _Payload(marker), b"labels": [0]}, f)
    with pytest.raises(ValueError, match="mkdir.*numpy arrays and plain values") as err:
        data.load_cifar10(str(tmp_path))
    assert not marker.exists() and "\n" not in str(err.value)


def test_a_cifar_batch_is_size_and_md5_checked_before_unpickling(tmp_path, monkeypatch):
    path = tmp_path / "test_batch"
    with open(path, "wb") as f:
        f.truncate(data.CIFAR10_TEST_SIZE)                           # the official size, not its bytes
    loads = []
    monkeypatch.setattr(data, "restricted_unpickle", lambda *a: loads.append(a))
    with pytest.raises(ValueError, match="MD5"):
        data.load_cifar10(str(tmp_path))
    with open(path, "wb") as f:
        f.truncate(data.MAX_CIFAR10_BATCH_BYTES + 1)
    with pytest.raises(ValueError, match="MiB"):
        data.load_cifar10(str(tmp_path))
    assert loads == []


def test_a_digits_training_checkpoint_that_holds_code_is_refused(tmp_path):
    from empirical import train_digits
    marker = tmp_path / "pwned"
    (tmp_path / "ck").mkdir()
    torch.save({"steps": 4, "payload": _Payload(marker)}, tmp_path / "ck" / "ddpm_ckpt.pt")
    with pytest.raises(ValueError, match="tensors and plain values.*--no-resume") as err:
        train_digits.train_ddpm(4, 8, 1e-3, 0.999, seed=2, ckpt_dir=tmp_path / "ck")
    assert not marker.exists() and "\n" not in str(err.value)


def _diffusers_folder(tmp_path, weights: bytes, name: str):
    from conftest import tiny_rgb_unet
    from diffusers import DDPMScheduler
    folder = tmp_path / "ddpm"
    tiny_rgb_unet().save_pretrained(folder)
    (folder / "diffusion_pytorch_model.safetensors").unlink()
    (folder / name).write_bytes(weights)
    DDPMScheduler(num_train_timesteps=1000).save_pretrained(folder)
    return folder


def test_weights_that_hold_code_or_are_corrupt_get_one_line(tmp_path):
    marker = tmp_path / "pwned"
    folder = _diffusers_folder(tmp_path, pickle.dumps(_Payload(marker)), "diffusion_pytorch_model.bin")
    with pytest.raises(ValueError) as err:
        checkpoints.load_diffusers_ddpm(folder)
    assert not marker.exists() and "\n" not in str(err.value) and str(folder) in str(err.value)
    bad = tmp_path / "w.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    with pytest.raises(ValueError, match="safetensors") as err:
        checkpoints.load_wideresnet(bad)
    assert "\n" not in str(err.value)

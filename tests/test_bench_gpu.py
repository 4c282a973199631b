"""benchmarks.bench_gpu --tiny on the CPU: one JSON with every section, skipped variants explained, no timing asserted."""
import json

import pytest
import torch

from benchmarks import bench_gpu


def test_tiny_run_on_the_cpu_writes_one_complete_json(tmp_path, capsys):
    path = tmp_path / "gpu.json"
    returned = bench_gpu.main(["--tiny", "--device", "cpu", "--json", str(path)])
    data = json.loads(path.read_text())
    assert data == json.loads(json.dumps(returned))
    assert data["device"]["type"] == "cpu" and data["device"]["name"]
    ran = {r["variant"]: r for r in data["throughput"]}
    assert set(ran) | set(data["skipped"]) == set(bench_gpu.VARIANTS) and not set(ran) & set(data["skipped"])
    assert "torch.compile" in data["skipped"] and "CUDA" in data["skipped"]["torch.compile"]
    assert {"fp32", "channels-last"} <= set(ran) and ran["fp32"]["purify_speedup_vs_fp32"] == 1.0
    cfg = data["config"]
    for r in ran.values():
        assert r["unet_evals_per_s"] == pytest.approx(r["purify_images_per_s"] * cfg["t_star"])
        assert r["purify_min_s"] <= r["purify_median_s"] and r["attack_images_per_s"] > 0
    assert data["determinism"]["default"]["identical"] and data["determinism"]["deterministic"]["identical"]
    assert 0 <= data["noise"]["share"] < 1
    rows = data["memory"]["rows"]
    assert [r["batch"] for r in rows] == [1, 2] and all(r[k] > 0 for r in rows for k in r if k.endswith("bytes"))
    assert data["memory"]["largest_batch"] is None and "not probed" in data["memory"]["largest_note"]
    assert "skipped" in capsys.readouterr().out


def test_channels_last_and_bf16_modes_compute_the_same_function():
    unet, _, clf = bench_gpu.build_models(True, torch.device("cpu"))
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([5, 5])
    with torch.no_grad():
        ref = unet(x, t).sample
        assert torch.allclose(bench_gpu.Mode(unet, "channels-last", "cpu")(x, t).sample, ref, atol=1e-5)
        assert torch.allclose(bench_gpu.Mode(clf, "channels-last", "cpu")(x), clf(x), atol=1e-5)
        if bench_gpu.unsupported("bf16 autocast", torch.device("cpu")) is None:
            low = bench_gpu.Mode(unet, "bf16 autocast", "cpu")(x, t).sample
            assert low.dtype == torch.float32 and torch.allclose(low, ref, atol=0.1, rtol=0.1)
    assert next(unet.parameters()).is_contiguous()           # the channels-last copy left the model as it was


def test_bad_arguments():
    with pytest.raises(SystemExit):
        bench_gpu.main(["--tiny", "--batch", "0"])

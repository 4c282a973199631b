"""Noise sources: the paper's seed rule, exact replay, batch-size invariance, save/load of the key."""
import json

import pytest
import torch

from empirical.noise import (BatchReplayNoise, FreshNoise, SampleFreshNoise, SampleReplayNoise, noise_from_dict, paper_seed,
                             sample_seed)
from empirical.purifiers import make_purifier

pytestmark = pytest.mark.usefixtures("one_thread")
SHAPE = (4, 1, 8, 8)


def test_paper_seed_formula():
    assert paper_seed(0, 0, "reverse") == 0
    assert paper_seed(0, 0, "forward") == 1
    assert paper_seed(3, 17, "forward") == 2 * (1000 * 3 + 17) + 1
    assert paper_seed(3, 17, "reverse") == 2 * (1000 * 3 + 17)
    seeds = {paper_seed(i, t, ph) for i in range(3) for t in range(1000) for ph in ("forward", "reverse")}
    assert len(seeds) == 3 * 1000 * 2
    with pytest.raises(ValueError, match="phase"):
        paper_seed(0, 1, "sideways")


def test_batch_replay_equals_manual_seed_draw():
    src = BatchReplayNoise(batch_index=5)
    for phase, t in [("forward", 100), ("reverse", 37)]:
        expect = torch.randn(SHAPE, generator=torch.Generator().manual_seed(paper_seed(5, t, phase)))
        assert torch.equal(src.draw(phase, t, SHAPE, "cpu", torch.float32), expect)
    assert not torch.equal(src.draw("forward", 3, SHAPE, "cpu", torch.float32),
                           src.draw("reverse", 3, SHAPE, "cpu", torch.float32))


def test_replay_identical_across_calls_fresh_differs():
    for src in (BatchReplayNoise(2), SampleReplayNoise([4, 9, 1, 7], run_seed=3)):
        a = src.draw("reverse", 10, SHAPE, "cpu", torch.float32)
        assert torch.equal(a, src.draw("reverse", 10, SHAPE, "cpu", torch.float32))
        assert not torch.equal(a, src.draw("reverse", 11, SHAPE, "cpu", torch.float32))
    fresh = FreshNoise(torch.Generator().manual_seed(0))
    assert not torch.equal(fresh.draw("reverse", 10, SHAPE, "cpu", torch.float32),
                           fresh.draw("reverse", 10, SHAPE, "cpu", torch.float32))


def test_sample_replay_rows_depend_only_on_their_id():
    full = SampleReplayNoise([10, 11, 12, 13], run_seed=7).draw("forward", 50, SHAPE, "cpu", torch.float32)
    part = SampleReplayNoise([13, 11], run_seed=7).draw("forward", 50, (2, 1, 8, 8), "cpu", torch.float32)
    assert torch.equal(part, full[[3, 1]])
    sub = SampleReplayNoise([10, 11, 12, 13], run_seed=7).subset(torch.tensor([2, 0]))
    assert torch.equal(sub.draw("forward", 50, (2, 1, 8, 8), "cpu", torch.float32), full[[2, 0]])
    other_run = SampleReplayNoise([10, 11, 12, 13], run_seed=8).draw("forward", 50, SHAPE, "cpu", torch.float32)
    assert not torch.equal(other_run, full)
    g = torch.Generator().manual_seed(sample_seed(7, 12, "forward", 50))
    assert torch.equal(full[2], torch.randn((1, 8, 8), generator=g))


def test_sample_seeds_distinct_and_standard_normal():
    seeds = {sample_seed(0, i, ph, t) for i in range(50) for t in range(50) for ph in ("forward", "reverse")}
    assert len(seeds) == 5000
    z = SampleReplayNoise(list(range(2000)), run_seed=1).draw("reverse", 5, (2000, 1, 4, 4), "cpu", torch.float64)
    n = z.numel()
    assert abs(float(z.mean())) < 5 / n ** 0.5            # 5 standard errors
    assert abs(float(z.var()) - 1) < 5 * (2 / n) ** 0.5


def test_batch_replay_subset_cuts_rows():
    src = BatchReplayNoise(1, batch_size=4)
    full = src.draw("reverse", 9, SHAPE, "cpu", torch.float32)
    assert torch.equal(src.subset(torch.tensor([3, 1])).draw("reverse", 9, (2, 1, 8, 8), "cpu", torch.float32),
                       full[[3, 1]])
    with pytest.raises(ValueError, match="batch_size"):
        BatchReplayNoise(1).subset(torch.tensor([0]))


def test_key_save_load_round_trip_replays(tmp_path):
    for src in (BatchReplayNoise(4, batch_size=4), SampleReplayNoise([3, 1, 4, 1], run_seed=59)):
        path = tmp_path / "key.json"
        path.write_text(json.dumps(src.to_dict()))
        back = noise_from_dict(json.loads(path.read_text()))
        for phase, t in [("forward", 100), ("reverse", 2)]:
            assert torch.equal(back.draw(phase, t, SHAPE, "cpu", torch.float32),
                               src.draw(phase, t, SHAPE, "cpu", torch.float32))
    with pytest.raises(ValueError, match="kind"):
        noise_from_dict({"kind": "mystery"})


def test_bad_draw_arguments():
    src = SampleReplayNoise([1, 2], run_seed=0)
    with pytest.raises(ValueError, match="phase"):
        src.draw("up", 1, (2, 3), "cpu", torch.float32)
    with pytest.raises(ValueError, match="rows"):
        src.draw("forward", 1, (3, 3), "cpu", torch.float32)
    with pytest.raises(ValueError):
        FreshNoise(None)


@pytest.mark.parametrize("name", ["diffpure", "revpure"])
def test_per_sample_replay_purification_invariant_to_batching(name, unet, scheduler, images):
    pur = make_purifier(name, unet, scheduler, t_star=12, unet_batch=2)
    ids = [20, 21, 22, 23]
    whole = pur(images, SampleReplayNoise(ids, run_seed=5))
    one = pur(images[[2]], SampleReplayNoise([22], run_seed=5))
    three = pur(images[[3, 0, 1]], SampleReplayNoise([23, 20, 21], run_seed=5))
    assert torch.equal(one[0], whole[2])
    assert torch.equal(three, whole[[3, 0, 1]])
    again = pur(images, noise_from_dict(json.loads(json.dumps(SampleReplayNoise(ids, 5).to_dict()))))
    assert torch.equal(again, whole)
    assert not torch.equal(pur(images, SampleReplayNoise(ids, run_seed=6)), whole)


def test_batch_replay_purification_repeats_and_fresh_differs(unet, scheduler, images):
    pur = make_purifier("diffpure", unet, scheduler, t_star=10)
    a = pur(images, BatchReplayNoise(0))
    assert torch.equal(a, pur(images, BatchReplayNoise(0)))
    assert not torch.equal(a, pur(images, BatchReplayNoise(1)))
    fresh = FreshNoise(torch.Generator().manual_seed(0))
    assert not torch.equal(pur(images, fresh), pur(images, fresh))


def test_ddim_needs_no_noise(unet, scheduler, images):
    pur = make_purifier("ddim", unet, scheduler, t_star=10)
    assert not pur.stochastic
    assert torch.equal(pur(images), pur(images, None))
    with pytest.raises(ValueError, match="noise source"):
        make_purifier("revpure", unet, scheduler, t_star=10)(images)


def test_sample_fresh_noise_is_new_each_call_but_reproducible_and_batch_invariant():
    src = SampleFreshNoise([10, 11, 12, 13], run_seed=7)
    first = src.draw("reverse", 5, SHAPE, "cpu", torch.float32)
    second = src.draw("reverse", 5, SHAPE, "cpu", torch.float32)
    assert not src.replay and not torch.equal(first, second)
    again = SampleFreshNoise([10, 11, 12, 13], run_seed=7)
    assert torch.equal(again.draw("reverse", 5, SHAPE, "cpu", torch.float32), first)
    alone = SampleFreshNoise([12], run_seed=7)
    alone.draw("reverse", 5, (1, 1, 8, 8), "cpu", torch.float32)
    assert torch.equal(alone.draw("reverse", 5, (1, 1, 8, 8), "cpu", torch.float32)[0], second[2])
    sub = src.subset(torch.tensor([1]))                      # shares the counters: continues with draw 3
    third = src.subset(torch.tensor([0, 2, 3])).draw("reverse", 5, (3, 1, 8, 8), "cpu", torch.float32)
    assert not torch.equal(sub.draw("reverse", 5, (1, 1, 8, 8), "cpu", torch.float32)[0], first[1])
    assert not torch.equal(third, second[[0, 2, 3]])
    replayed = SampleReplayNoise([10, 11, 12, 13], run_seed=7).draw("reverse", 5, SHAPE, "cpu", torch.float32)
    assert not torch.equal(first, replayed)


def test_batch_replay_subset_after_first_draw_learns_batch_size():
    src = BatchReplayNoise(2)
    full = src.draw("forward", 4, SHAPE, "cpu", torch.float32)
    assert torch.equal(src.subset(torch.tensor([1, 3])).draw("forward", 4, (2, 1, 8, 8), "cpu", torch.float32),
                       full[[1, 3]])
    with pytest.raises(ValueError, match="batches of 4"):
        src.draw("forward", 4, (3, 1, 8, 8), "cpu", torch.float32)

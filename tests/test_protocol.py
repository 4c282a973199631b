import torch

from empirical import attacks
from empirical.protocol import PREDICT_DRAWS, Protocol, derived_seed, replay_source, run_chunk
from empirical.purifiers import make_purifier

KEYS_STOCHASTIC = {"ids", "eot_ids", "clean_replay", "bpda_replay", "clean_fresh", "bpda_replay_tested_fresh",
                   "bpda_fresh", "eot_replay", "eot_fresh", "prediction"}


def _setup(unet, scheduler, images):
    pur = make_purifier("diffpure", unet=unet, scheduler=scheduler, t_star=3, unet_batch=4)
    y = torch.tensor([0, 1, 2, 0])
    ids = torch.tensor([10, 11, 12, 13])
    return pur, y, ids


def test_run_chunk_fills_every_cell(unet, scheduler, images, cnn_classifier, one_thread):
    pur, y, ids = _setup(unet, scheduler, images)
    p = Protocol(eps=0.1, steps=2, step_size=0.05, eot=2, fresh_evals=2, predict_samples=2)
    rec = run_chunk(cnn_classifier, pur, images, y, ids, 0, p, torch.tensor([True, True, False, False]))
    assert set(rec) == KEYS_STOCHASTIC
    assert len(rec["clean_fresh"]) == 2 and len(rec["clean_fresh"][0]) == 4
    assert len(rec["eot_replay"][0]) == 2 and rec["eot_ids"] == [10, 11]
    again = run_chunk(cnn_classifier, pur, images, y, ids, 0, p, torch.tensor([True, True, False, False]))
    assert again == rec      # every draw is keyed: the same run gives the same record


def test_per_sample_keys_make_chunks_irrelevant(unet, scheduler, images, cnn_classifier, one_thread):
    pur, y, ids = _setup(unet, scheduler, images)
    p = Protocol(eps=0.1, steps=2, step_size=0.05, eot=1, fresh_evals=2)
    none = torch.zeros(4, dtype=torch.bool)
    whole = run_chunk(cnn_classifier, pur, images, y, ids, 0, p, none, predict=False)
    first = run_chunk(cnn_classifier, pur, images[:2], y[:2], ids[:2], 0, p, none[:2], predict=False)
    second = run_chunk(cnn_classifier, pur, images[2:], y[2:], ids[2:], 1, p, none[2:], predict=False)
    for key in ("clean_replay", "bpda_replay", "clean_fresh", "bpda_fresh"):
        joined = [a + b for a, b in zip(first[key], second[key])]
        assert joined == whole[key], key


def test_deterministic_purifier_has_no_fresh_cells(images, cnn_classifier):
    p = Protocol(eps=0.1, steps=1, step_size=0.05, eot=3, fresh_evals=2)
    rec = run_chunk(cnn_classifier, make_purifier("none"), images, torch.tensor([0, 1, 2, 0]),
                    torch.arange(4), 0, p, torch.ones(4, dtype=torch.bool))
    assert "clean_fresh" not in rec and "bpda_fresh" not in rec and "prediction" not in rec
    assert len(rec["eot_replay"][0]) == 4


def test_clean_only_chunk(images, cnn_classifier):
    p = Protocol(eps=0.1, steps=1, step_size=0.05)
    rec = run_chunk(cnn_classifier, make_purifier("gaussian", sigma=0.1), images, torch.tensor([0, 1, 2, 0]),
                    torch.arange(4), 0, p, torch.zeros(4, dtype=torch.bool), clean_only=True)
    assert set(rec) == {"ids", "eot_ids", "clean_replay", "clean_fresh"}


def test_derived_seeds_differ_by_purpose_and_fit_63_bits():
    seeds = {derived_seed(0, purpose) for purpose in ("replay", "clean", "bpda", "transfer")}
    assert len(seeds) == 4 and all(0 <= s < 2 ** 63 for s in seeds)
    assert derived_seed(1, "replay") != derived_seed(0, "replay")


def test_ticks_count_the_purifications_the_protocol_announces(unet, scheduler, images, cnn_classifier):
    pur, y, ids = _setup(unet, scheduler, images)
    p = Protocol(eps=0.1, steps=2, step_size=0.05, eot=3, fresh_evals=2, predict_samples=2)
    mask = torch.tensor([True, False, True, False])
    ticks = []
    rec = run_chunk(cnn_classifier, pur, images, y, ids, 0, p, mask, predict=True, tick=ticks.append)
    announced = p.purifications(4, 2, True, True)
    unread = (2 - len(rec["prediction"])) * (1 + PREDICT_DRAWS)      # fewer than 2 replay-fooled samples
    rejudge = 4                                                       # runs unless the final iterates are best
    assert announced - unread - rejudge <= sum(ticks) <= announced - unread


def test_shared_cells_equal_separate_evaluations(unet, scheduler, images, cnn_classifier):
    """The clean replay cell (iterate 0 of the replay attack), the BPDA replay cell (the attack's own verdict)
    and the BPDA-EOT replay cell (BPDA's under replay) equal evaluating them on their own."""
    pur, y, ids = _setup(unet, scheduler, images)
    p = Protocol(eps=0.1, steps=2, step_size=0.05, eot=3, fresh_evals=1)
    mask = torch.tensor([True, False, True, True])
    rec = run_chunk(cnn_classifier, pur, images, y, ids, 0, p, mask, predict=False)
    fixed = replay_source(p, ids, 0)
    clean = attacks.evaluate(cnn_classifier, pur, images, y, mode="replay", noise=fixed).correct.tolist()
    adv = attacks.bpda(cnn_classifier, pur, images, y, noise=fixed, keep="best", **p.attack_kwargs)
    bpda = attacks.evaluate(cnn_classifier, pur, adv.x_adv, y, mode="replay", noise=fixed).correct.tolist()
    eot = attacks.bpda_eot(cnn_classifier, pur, images[mask], y[mask], eot=3, noise=fixed.subset(mask.nonzero().flatten()),
                           keep="best", **p.attack_kwargs)
    assert rec["clean_replay"] == clean and rec["bpda_replay"] == bpda
    assert rec["eot_replay"] == [[c for c, m in zip(bpda[0], mask.tolist()) if m]]
    assert torch.equal(eot.fooled_rate == 0, torch.tensor(rec["eot_replay"][0]))


def test_diffpure_estimand_adds_any_iterate_cells_and_ticks_every_phase(unet, scheduler, images, cnn_classifier):
    pur, y, ids = _setup(unet, scheduler, images)
    p = Protocol(eps=0.1, steps=1, step_size=0.05, eot=2, fresh_evals=1, estimand="any_iterate_averaged",
                 judge_draws=2, confirm_draws=2)
    mask = torch.tensor([True, True, False, False])
    ticks = []
    rec = run_chunk(cnn_classifier, pur, images, y, ids, 0, p, mask, predict=False, tick=ticks.append)
    assert len(rec["bpda_fresh_any"]) == 4 and len(rec["eot_fresh_any"]) == 2
    confirmations = sum(ticks) - p.purifications(4, 2, True, False)
    assert -4 <= confirmations <= 6 * 2 * p.confirm_draws    # the re-judge may not run; confirmations add
    # broken at any iterate includes broken at the final one: never more robust than the final iterate's
    # averaged-logit verdict, and a sample wrong on clean input is broken at the start
    assert all(isinstance(v, bool) for v in rec["bpda_fresh_any"])

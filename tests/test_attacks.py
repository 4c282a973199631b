"""PGD through purifiers: threat set, known optimum on a linear model, exact replay, evaluation modes,
DiffPure's any-iterate rule, bad input, and a cross-check against torchattacks.PGD."""
import math

import pytest
import torch

from empirical.attacks import ESTIMANDS, PAPER_SETTINGS, PRESETS, bpda, bpda_eot, evaluate, pgd, project
from empirical.noise import FreshNoise, SampleReplayNoise
from empirical.purifiers import make_purifier

pytestmark = pytest.mark.usefixtures("one_thread")


def _binary_linear(seed=0, d=64):
    g = torch.Generator().manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(d, 2))
    with torch.no_grad():
        model[1].weight.copy_(torch.randn(2, d, generator=g) * 0.2)
        model[1].bias.zero_()
    return model.eval()


def _interior_batch(n=16, seed=0):
    return 0.3 + 0.4 * torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed))


def _margin(model, x, y):
    logits = model(x)
    return logits.gather(1, y[:, None])[:, 0] - logits.gather(1, (1 - y)[:, None])[:, 0]


@pytest.mark.parametrize("norm,eps,step", [("linf", 0.05, 0.02), ("l2", 0.5, 0.2)])
@pytest.mark.parametrize("purifier", ["none", "gaussian"])
def test_pgd_finds_the_known_optimum_of_a_linear_model(norm, eps, step, purifier):
    """For a binary linear model the CE ascent direction is fixed, so PGD must land on the exact optimum."""
    model, x = _binary_linear(), _interior_batch()
    with torch.no_grad():
        y = model(x).argmax(1)
    pur = make_purifier(purifier, sigma=1e-4)
    noise = SampleReplayNoise(range(16), run_seed=0)
    res = pgd(model, pur, x, y, eps=eps, norm=norm, steps=8, step_size=step, noise=noise)
    w = model[1].weight.detach()
    v = (w[1 - y] - w[y]).view_as(x)                         # direction that lowers the margin
    if norm == "linf":
        x_star = x + eps * v.sign()
    else:
        x_star = x + eps * v / v.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    assert torch.allclose(res.x_adv, x_star, atol=1e-6)
    with torch.no_grad():
        fooled = _margin(model, pur(x_star, noise), y) < 0
    assert fooled.any() and (~fooled).any()                 # the eps is between the easy and hard cases
    assert torch.equal(res.fooled_rate.bool(), fooled)


@pytest.mark.parametrize("norm,eps", [("linf", 8 / 255), ("l2", 0.3)])
def test_adversarials_stay_in_box_and_ball(norm, eps, unet, scheduler, images, cnn_classifier):
    pur = make_purifier("diffpure", unet, scheduler, t_star=3)
    x = images.clone()
    x[0] = 1.0                                               # saturated pixels exercise the box
    y = torch.tensor([0, 1, 2, 0])
    res = pgd(cnn_classifier, pur, x, y, eps=eps, norm=norm, steps=3, step_size=eps / 2, gradient="full",
              noise=SampleReplayNoise([0, 1, 2, 3], 0), random_start=True, generator=torch.Generator().manual_seed(0))
    d = (res.x_adv - x).flatten(1)
    assert res.x_adv.min() >= 0 and res.x_adv.max() <= 1
    size = d.abs().max(1).values if norm == "linf" else d.norm(dim=1)
    assert (size <= eps + 1e-6).all() and (size > 0).any()


@pytest.mark.parametrize("keep", ["final", "best"])
def test_replay_evaluation_reproduces_attack_loss_exactly(keep, unet, scheduler, images, cnn_classifier):
    pur = make_purifier("diffpure", unet, scheduler, t_star=4)
    y = torch.tensor([0, 1, 2, 0])
    noise = SampleReplayNoise([7, 8, 9, 10], run_seed=3)
    res = bpda(cnn_classifier, pur, images, y, eps=16 / 255, steps=3, step_size=4 / 255, noise=noise, keep=keep)
    ev = evaluate(cnn_classifier, pur, res.x_adv, y, mode="replay", noise=noise)
    assert torch.equal(ev.loss[0], res.loss)
    assert torch.equal(~ev.correct[0], res.fooled_rate.bool())
    fresh = evaluate(cnn_classifier, pur, res.x_adv, y, mode="fresh", generator=torch.Generator().manual_seed(0))
    assert not torch.equal(fresh.loss[0], res.loss)


def _tanh_mlp(seed=4):
    """A small nonlinear classifier on 8x8 images whose loss is not monotone along overshooting PGD steps."""
    g = torch.Generator().manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * (0.5 if p.ndim == 2 else 0.1))
    return model.eval()


def _overshoot_case(purifier_name):
    model, pur = _tanh_mlp(), make_purifier(purifier_name, sigma=0.1)
    x = torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    noise = SampleReplayNoise(range(8), run_seed=0)
    with torch.no_grad():
        y = model(pur(x, noise)).argmax(1)                   # start from correctly classified points
    return model, pur, x, y, dict(eps=0.3, steps=5, step_size=0.3, noise=noise)   # large steps overshoot


def test_best_iterate_under_replay_dominates_final():
    model, pur, x, y, kw = _overshoot_case("gaussian")
    final, best = bpda(model, pur, x, y, **kw), bpda(model, pur, x, y, keep="best", **kw)
    better_or_same = (best.fooled_rate > final.fooled_rate) | (
        (best.fooled_rate == final.fooled_rate) & (best.loss >= final.loss))
    assert better_or_same.all()
    earlier = best.best_step < 5
    assert earlier.any() and (best.loss > final.loss).any()
    assert best.loss_history.shape == (6, 8)


def test_eot_under_replay_is_one_draw_and_fresh_uses_k(images, linear_classifier):
    pur = make_purifier("gaussian", sigma=0.1)
    y = torch.tensor([0, 1, 2, 0])
    noise = SampleReplayNoise([0, 1, 2, 3], run_seed=0)
    one = bpda(linear_classifier, pur, images, y, eps=0.1, steps=2, step_size=0.05, noise=noise)
    eot = bpda_eot(linear_classifier, pur, images, y, eot=15, eps=0.1, steps=2, step_size=0.05, noise=noise)
    assert eot.eot_effective == 1 and torch.equal(one.x_adv, eot.x_adv)
    fresh = bpda_eot(linear_classifier, pur, images, y, eot=4, eps=0.1, steps=2, step_size=0.05,
                     noise=FreshNoise(torch.Generator().manual_seed(0)))
    assert fresh.eot_effective == 4
    with pytest.raises(ValueError, match="select_draws >= 3"):
        bpda(linear_classifier, pur, images, y, eps=0.1, steps=2, step_size=0.05, keep="best", select_draws=1,
             noise=FreshNoise(torch.Generator().manual_seed(0)))
    ok = bpda(linear_classifier, pur, images, y, eps=0.1, steps=2, step_size=0.05, keep="best", select_draws=3,
              noise=FreshNoise(torch.Generator().manual_seed(0)))
    assert set(ok.fooled_rate.tolist()) <= {0.0, 1 / 3, 2 / 3, 1.0}


def test_fresh_and_worst_of_n_match_exact_gaussian_probabilities():
    """Toy purifier on a binary linear model: P(correct) = Phi(margin / (sigma ||w1 - w0||)) exactly."""
    model, sigma, n = _binary_linear(1), 0.2, 400
    x = _interior_batch(1, seed=3).expand(n, -1, -1, -1).contiguous()
    with torch.no_grad():
        y = model(x).argmax(1)
        m = float(_margin(model, x[:1], y[:1]))
    w = model[1].weight.detach()
    p = 0.5 * (1 + math.erf(m / (sigma * float((w[1] - w[0]).norm())) / math.sqrt(2)))
    assert 0.6 < p < 0.95
    pur = make_purifier("gaussian", sigma=sigma)
    fresh = evaluate(model, pur, x, y, mode="fresh", generator=torch.Generator().manual_seed(0), draws=3)
    assert fresh.correct.shape == (3, n)
    assert abs(float(fresh.correct.float().mean()) - p) < 4 * math.sqrt(p * (1 - p) / (3 * n))
    worst = evaluate(model, pur, x, y, mode="worst-of-N", generator=torch.Generator().manual_seed(1), draws=3)
    assert abs(worst.accuracy - p ** 3) < 4 * math.sqrt(p ** 3 * (1 - p ** 3) / n)
    assert (worst.per_sample <= worst.correct.float().mean(0)).all()


def test_deterministic_purifier_evaluations_agree(unet, scheduler, images, cnn_classifier):
    pur = make_purifier("ddim", unet, scheduler, t_star=3)
    y = torch.tensor([0, 1, 2, 0])
    rep = evaluate(cnn_classifier, pur, images, y, mode="replay")
    fr = evaluate(cnn_classifier, pur, images, y, mode="fresh", draws=3)
    assert torch.equal(fr.correct[0], rep.correct[0]) and torch.equal(fr.correct[2], rep.correct[0])


def test_bad_inputs(images, linear_classifier):
    pur, y = make_purifier("none"), torch.tensor([0, 1, 2, 0])
    kw = dict(steps=1, step_size=0.01, noise=None)
    nan = images.clone()
    nan[1, 0, 2, 2] = float("nan")
    cases = [((nan, y), dict(eps=0.1), "NaN"), ((images * 2, y), dict(eps=0.1), "outside"),
             ((images[0], y), dict(eps=0.1), "ndim"), ((images, y[:3]), dict(eps=0.1), "labels"),
             ((images, y), dict(eps=0.0), "eps"), ((images, y), dict(eps=-0.1), "eps"),
             ((images, y), dict(eps=1.5), "eps"), ((images, y), dict(eps=0.1, norm="l3"), "norm"),
             ((images, y), dict(eps=0.1, gradient="magic"), "gradient"),
             ((images, y), dict(eps=0.1, keep="worst"), "keep"),
             ((images, y), dict(eps=0.1, random_start=True), "Generator")]
    for (xx, yy), extra, msg in cases:
        with pytest.raises(ValueError, match=msg):
            pgd(linear_classifier, pur, xx, yy, **kw, **extra)
    with pytest.raises(ValueError, match="noise source"):
        pgd(linear_classifier, make_purifier("gaussian", sigma=0.1), images, y, eps=0.1, **kw)
    with pytest.raises(ValueError, match="mode"):
        evaluate(linear_classifier, pur, images, y, mode="average")
    with pytest.raises(ValueError, match="replay"):
        evaluate(linear_classifier, make_purifier("gaussian", sigma=0.1), images, y, mode="replay",
                 noise=FreshNoise(torch.Generator()))


def test_presets_are_the_papers_threat_models(images, linear_classifier):
    assert PRESETS["cifar10"]["eps"] == 8 / 255 and PRESETS["imagenet"]["eps"] == 4 / 255
    assert PRESETS["cifar10"]["norm"] == PRESETS["imagenet"]["norm"] == "linf"
    assert PAPER_SETTINGS["cifar10"]["eot"] == 15
    res = bpda(linear_classifier, make_purifier("none"), images, torch.tensor([0, 1, 2, 0]), noise=None,
               **{**PRESETS["cifar10"], "steps": 3})
    assert (res.x_adv - images).abs().max() <= 8 / 255 + 1e-7


def _digits_classifier():
    from sklearn.datasets import load_digits
    d = load_digits()
    x = torch.tensor(d.images / 16.0, dtype=torch.float32)[:, None]
    y = torch.tensor(d.target)
    g = torch.Generator().manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    with torch.no_grad():
        for layer in (model[1], model[3]):
            bound = layer.in_features ** -0.5                   # torch's default uniform range, seeded
            layer.weight.uniform_(-bound, bound, generator=g)
            layer.bias.uniform_(-bound, bound, generator=g)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(300):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x[:1400]), y[:1400]).backward()
        opt.step()
    return model.eval(), x[1400:], y[1400:]


def test_pgd_agrees_with_torchattacks_without_purifier():
    torchattacks = pytest.importorskip("torchattacks")
    model, x, y = _digits_classifier()
    with torch.no_grad():
        clean = float((model(x).argmax(1) == y).float().mean())
    assert clean > 0.85
    eps, alpha, steps = 0.08, 0.02, 10
    ours = pgd(model, make_purifier("none"), x, y, eps=eps, steps=steps, step_size=alpha, noise=None)
    ours_acc = evaluate(model, make_purifier("none"), ours.x_adv, y).accuracy
    theirs = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=False)(x, y)
    with torch.no_grad():
        their_acc = float((model(theirs).argmax(1) == y).float().mean())
    assert ours_acc < clean - 0.2                          # the attack does bite at this eps
    assert abs(ours_acc - their_acc) <= 0.03


def test_project_is_the_ball_and_box_projection():
    g = torch.Generator().manual_seed(4)
    x = torch.rand(6, 1, 4, 4, generator=g)
    far = x + 3 * torch.randn(6, 1, 4, 4, generator=g)
    lin = project(far, x, 0.1, "linf")
    assert torch.equal(lin, (x + (far - x).clamp(-0.1, 0.1)).clamp(0, 1))
    l2 = project(far, x, 0.5, "l2")
    assert ((l2 - x).flatten(1).norm(dim=1) <= 0.5 + 1e-6).all() and l2.min() >= 0 and l2.max() <= 1
    inside = project(x + 0.01, x, 0.5, "l2")
    assert torch.allclose(inside, (x + 0.01).clamp(0, 1))                  # points in the ball stay put
    assert torch.equal(project(lin, x, 0.1, "linf"), lin)                  # idempotent


class ScriptedNoise:
    """Fresh-noise stand-in whose k-th draw is script[k] (a scalar spread over the image): pins the exact
    draws the any-iterate rule takes, and fails on any draw beyond the script."""

    replay = False

    def __init__(self, script):
        self.script, self.calls = list(script), 0

    def draw(self, phase, t, shape, device, dtype):
        assert self.calls < len(self.script), "more draws than scripted"
        value = self.script[self.calls]
        self.calls += 1
        return torch.full(tuple(shape), value / shape[-1] / shape[-2], dtype=dtype)

    def subset(self, index):
        return self


def _sum_threshold_model():
    """Two classes on 2x2 images: logits [2.5, sum of pixels], so the true class 0 needs sum < 2.5."""
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[0.0] * 4, [1.0] * 4]))
        model[1].bias.copy_(torch.tensor([2.5, 0.0]))
    return model.eval()


@pytest.mark.parametrize("script, steps, any_, final", [
    ([2, 2, 2] + [-2] * 5, 0, False, False),                       # judged broken, not confirmed
    ([2, 2, 2] + [2] * 5, 0, True, True),                          # judged and confirmed
    ([6, -2, -2] + [6, -2, -2, -2, 6], 0, True, True),             # logits averaged, not a majority vote
    ([2, 2, 2] + [2] * 5 + [-2, -2, -2], 1, True, False),          # broken at the start only
    ([-2, -2, -2] + [2, 2, 2] + [2] * 5, 1, True, True),           # broken at the final iterate only
])
def test_any_iterate_rule_follows_diffpure_harness(script, steps, any_, final):
    x, y = torch.full((1, 1, 2, 2), 0.5), torch.tensor([0])
    judge = ScriptedNoise(script)
    res = pgd(_sum_threshold_model(), make_purifier("gaussian", sigma=1.0), x, y, eps=1e-3, steps=steps,
              step_size=1e-4, noise=SampleReplayNoise([0], 0), any_iterate=True, judge_noise=judge,
              judge_draws=3, confirm_draws=5)
    assert judge.calls == len(script)                              # every scripted draw, and no other
    assert bool(res.broken_any[0]) is any_ and bool(res.broken_final[0]) is final


@pytest.mark.parametrize("purifier_name", ["gaussian", "none"])   # under replay / deterministic
def test_any_iterate_on_replay_and_deterministic_purifiers_is_best_iterate(purifier_name):
    model, pur, x, y, kw = _overshoot_case(purifier_name)
    best, final = bpda(model, pur, x, y, keep="best", **kw), bpda(model, pur, x, y, **kw)
    judged = bpda(model, pur, x, y, any_iterate=True, judge_noise=kw["noise"] if pur.stochastic else None, **kw)
    assert torch.equal(judged.x_adv, final.x_adv) and torch.equal(judged.loss, final.loss)   # judging is passive
    assert torch.equal(judged.broken_any, best.fooled_rate.bool())
    assert torch.equal(judged.broken_final, final.fooled_rate.bool())
    assert (judged.broken_any & ~judged.broken_final).any()     # the rules differ on this setup


def test_any_iterate_accuracy_is_at_most_final_iterate_accuracy(images, linear_classifier):
    pur, y = make_purifier("gaussian", sigma=0.3), torch.tensor([0, 1, 2, 0])
    kw = dict(eps=0.2, steps=4, step_size=0.1, eot=2)
    plain = bpda_eot(linear_classifier, pur, images, y, noise=FreshNoise(torch.Generator().manual_seed(0)), **kw)
    judged = bpda_eot(linear_classifier, pur, images, y, noise=FreshNoise(torch.Generator().manual_seed(0)),
                      any_iterate=True, judge_noise=FreshNoise(torch.Generator().manual_seed(1)), judge_draws=3,
                      confirm_draws=4, **kw)
    assert torch.equal(plain.x_adv, judged.x_adv)                 # a separate judging source leaves the attack alone
    assert (judged.broken_any >= judged.broken_final).all()
    assert judged.broken_any.float().mean() >= judged.broken_final.float().mean()
    assert plain.broken_any is None and "any iterate" in ESTIMANDS["any_iterate_averaged"]


@pytest.mark.parametrize("eps", [0.001, 0.003, 0.005])
def test_any_iterate_pgd_matches_the_closed_form_of_a_linear_model(eps):
    """l_inf, random start, step 2.5 eps / steps, robust iff no iterate is misclassified: on a linear binary
    model whose box never binds, an image is broken iff eps ||w||_1 > |z| (its margin)."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(256, generator=g) * 0.05
    x = 0.5 + (torch.rand(64, 1, 16, 16, generator=g) - 0.5) * 0.2
    b = -0.5 * w.sum()
    z = x.flatten(1) @ w + b
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(256, 2))
    with torch.no_grad():
        model[1].weight.copy_(torch.stack([w, -w]))
        model[1].bias.copy_(torch.stack([b, -b]))
    y = (z < 0).long()
    res = pgd(model.eval(), make_purifier("none"), x, y, eps=eps, steps=20, step_size=2.5 * eps / 20, noise=None,
              random_start=True, generator=torch.Generator().manual_seed(1), any_iterate=True)
    expected = z.abs() > eps * w.abs().sum()
    assert torch.equal(~res.broken_any, expected)
    assert 0.1 < expected.float().mean() < 0.9


def test_bad_step_size_dtype_and_judge_arguments(images, linear_classifier):
    pur, y = make_purifier("none"), torch.tensor([0, 1, 2, 0])
    kw = dict(eps=0.1, steps=1, noise=None)
    for bad in (float("nan"), float("inf"), -0.1, "big"):
        with pytest.raises(ValueError, match="step_size"):
            pgd(linear_classifier, pur, images, y, step_size=bad, **kw)
    with pytest.raises(ValueError, match="float32 or float64"):
        pgd(linear_classifier.half(), pur, images.half(), y, step_size=0.01, **kw)
    with pytest.raises(ValueError, match="any_iterate=True"):
        pgd(linear_classifier, pur, images, y, step_size=0.01, judge_noise=FreshNoise(torch.Generator()), **kw)
    gauss = make_purifier("gaussian", sigma=0.1)
    with pytest.raises(ValueError, match="judge_noise"):
        pgd(linear_classifier, gauss, images, y, step_size=0.01, any_iterate=True,
            **{**kw, "noise": SampleReplayNoise([0, 1, 2, 3], 0)})
    with pytest.raises(ValueError, match="judge_draws"):
        pgd(linear_classifier, pur, images, y, step_size=0.01, any_iterate=True, judge_draws=0, **kw)


def test_best_iterate_pgd_runs_in_float64():
    """keep='best' on float64 inputs: the running best of fooled rate and loss keeps the input's dtype."""
    import torch
    from empirical import attacks
    from empirical.purifiers import make_purifier
    gen = torch.Generator().manual_seed(0)
    clf = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3)).double()
    x = torch.rand(4, 1, 4, 4, dtype=torch.float64, generator=gen)
    y = torch.tensor([0, 1, 2, 0])
    out = attacks.pgd(clf, make_purifier("none"), x, y, eps=0.1, steps=3, step_size=0.05, noise=None, keep="best")
    assert out.x_adv.dtype == torch.float64 and out.fooled_rate.dtype == torch.float64
    assert float((out.x_adv - x).abs().max()) <= 0.1 + 1e-12

"""The runner's plan (pairs dealt by cost) and its progress bar (ETA weighted by each unit's cost)."""
import pytest

from empirical.harness.runner import Cell, Chunk, Progress, assign


def test_assign_is_deterministic_balanced_and_covers_every_task():
    costs = [101 * 180, 101 * 150, 1 * 180, 1 * 150, 101 * 180, 101 * 150, 1 * 180, 1 * 150]
    plan = assign(costs, 2)
    assert plan == assign(costs, 2) and sorted(set(plan)) == [0, 1]
    loads = [sum(c for c, r in zip(costs, plan) if r == k) for k in (0, 1)]
    assert max(loads) <= 4 / 3 * sum(costs) / 2
    # round-robin by chunk index would give rank 0 both heavy first chunks; the plan splits them
    assert plan[0] != plan[4]
    assert assign([5.0], 3) == [0] and assign([], 2) == []


def _cells():
    """A slow cell (a diffusion purifier: 101 network evaluations per image) before a cheap one (1)."""
    chunk = Chunk(0, tuple(range(10)))
    slow = Cell("slow", "slow", lambda c, tick: {}, lambda c: 100, 101.0, "purification")
    fast = Cell("fast", "fast", lambda c, tick: {}, lambda c: 100, 1.0, "purification")
    return [(slow, chunk), (fast, chunk)]


def test_eta_after_a_tenth_of_the_run_is_within_a_factor_1_5_of_the_truth():
    """A fake clock: each unit costs its cell's weight in seconds. Counting units alone would predict twice
    the true time after the slow cell's first tenth; the weighted bar predicts it exactly."""
    todo = _cells()
    progress = Progress(todo, disable=False)
    total_seconds = sum(cell.work(chunk) * cell.weight for cell, chunk in todo)
    elapsed = 0.0
    cell, chunk = todo[0]
    progress.start(cell, chunk, 1)
    while elapsed < 0.1 * total_seconds:
        progress.tick(1)
        elapsed += cell.weight
    eta = elapsed * (progress.bar.total - progress.bar.n) / progress.bar.n
    assert 1 / 1.5 <= (elapsed + eta) / total_seconds <= 1.5
    units_eta = elapsed * (progress.total_work - progress.done) / progress.done
    assert (elapsed + units_eta) / total_seconds > 1.5               # what an unweighted count would say
    progress.bar.close()


def test_a_pair_that_did_less_than_announced_ends_where_its_share_ends():
    todo = _cells()
    with Progress(todo, disable=False) as progress:
        cell, chunk = todo[0]
        progress.start(cell, chunk, 1)
        progress.tick(60)
        progress.finish(cell.work(chunk))
        assert progress.bar.n == pytest.approx(100 * 101.0)
        assert progress.done == 60                                     # the count shown stays the work done

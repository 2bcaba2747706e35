"""The decisions' error rates by seeded simulation with a known truth (bench/decisions.py has the
full tables): the pick ships a candidate worse than the best by more than the margin in at most 5% of
draws at every item count, picks a cheaper equal one at 1000 items, and early stopping does not stop
the eventual winner."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import decisions as sim  # noqa: E402 - bench/ is not a package on the path


@pytest.mark.parametrize("n", [20, 50, 200, 1000])
@pytest.mark.parametrize("k", [2, 6])
def test_the_pick_rarely_ships_a_candidate_worse_by_more_than_the_margin(n, k):
    draw, costs = sim.cheap_worse(k, n, rho=0.0 if k == 2 else 0.3)
    assert sim.pick_shares(draw, costs, margin=0.05, draws=80 if n < 1000 else 30, seed=n + k)["cheap"] <= 0.05


@pytest.mark.parametrize("n", [20, 100])
def test_the_pick_judges_the_objective_not_each_suite(n):
    draw, costs = sim.two_suites_each_worse(n, rho=0.3)  # 0.06 worse on each of two suites: worse on the objective
    assert sim.pick_shares(draw, costs, margin=0.02, draws=100, seed=n)["cheap"] <= 0.05


def test_a_cheaper_equal_candidate_is_picked_at_1000_items():
    draw, costs = sim.cheap_equal(1000, rho=0.5)
    assert sim.pick_shares(draw, costs, margin=0.05, draws=200, seed=3)["cheap"] >= 0.80


@pytest.mark.parametrize("case", ["two_suite_challenger", "skewed_challenger", "equal_challenger"])
def test_early_stopping_does_not_stop_the_eventual_winner(case):
    order, draw = getattr(sim, case)()
    rates = sim.stop_shares(order, draw, draws=150, seed=1)
    assert rates["winner stopped"] <= 0.05 and rates["stopped"] <= (0.05 if case == "equal_challenger" else 0.08)


def test_early_stopping_stops_a_clearly_worse_trial_early():
    order, draw = sim.clearly_worse()
    rates = sim.stop_shares(order, draw, draws=60, seed=2)
    assert rates["stopped"] >= 0.9 and rates["items saved"] >= 0.5


def test_suites_are_interleaved_and_shuffled_in_every_part():
    order, _ = sim.two_suite_challenger()  # 200 + 50 items
    parts = order.chunks()
    assert [sum(len(p.rows) for p in part) for part in parts] == [25, 25, 50, 100, 50]
    for part in parts:
        sizes = {p.name: len(p.rows) for p in part}
        assert abs(sizes["first"] - 4 * sizes["second"]) <= 4  # every part holds both suites in proportion
    first = [r["id"] for part in parts for p in part if p.name == "first" for r in p.rows]
    assert sorted(first, key=int) == [str(i) for i in range(200)] and first != sorted(first, key=int)

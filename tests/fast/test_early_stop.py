"""The fixed scoring order of early stopping: its parts, on the shipped suites (no model loads)."""

import dataclasses
import itertools

from harness.score.suites import load_suite
from harness.sweep.early_stop import ItemOrder, spent


def test_parts_cover_every_item_once_and_tests_come_after_doubling_counts():
    suites = [load_suite("extraction", 30), load_suite("mmlu", 70)]
    order = ItemOrder(suites, {"extraction": 0.5, "mmlu": 0.5}, {"extraction": "field_f1", "mmlu": "acc"}, chunk=8)
    parts = order.chunks()
    keys = [[(piece.name, str(row["id"])) for piece in part for row in piece.rows] for part in parts]
    tested_at = list(itertools.accumulate(map(len, keys)))
    assert tested_at == [8, 16, 32, 64, 100] and order.looks() == [8, 16, 32, 64]
    every = [k for part in keys for k in part]
    assert len(every) == len(set(every)) == 100  # each item once
    assert set(every) == {(s.name, str(r["id"])) for s in suites for r in s.rows}
    for end in tested_at:  # every look sees the suites in proportion (30 extraction : 70 mmlu), within one item
        seen = every[:end]
        assert abs(sum(name == "extraction" for name, _ in seen) - 0.3 * end) <= 1, end
    # The order is the items' own (a hash of suite and id), not the file's: reversed rows, the same parts.
    flipped = [dataclasses.replace(s, rows=list(reversed(s.rows))) for s in suites]
    again = [[(p.name, str(r["id"])) for p in part for r in p.rows] for part in ItemOrder(flipped, order.weights, {}, chunk=8).chunks()]
    assert [sorted(part) for part in again] == [sorted(part) for part in keys]


def test_a_chunk_as_large_as_the_suites_is_one_part_of_whole_suites():
    suites = [load_suite("extraction", 30), load_suite("mmlu", 70)]
    (part,) = ItemOrder(suites, {"extraction": 0.5, "mmlu": 0.5}, {}, chunk=100).chunks()
    assert sorted(part, key=lambda s: s.name) == suites


def test_alpha_is_spent_across_the_looks_and_never_exceeds_alpha():
    assert spent(0.05, 0) == 0 and abs(spent(0.05, 1) - 0.05) < 1e-12
    shares = [spent(0.05, t) for t in (1 / 16, 1 / 8, 1 / 4, 1 / 2)]
    assert shares == sorted(shares) and shares[-1] < 0.05

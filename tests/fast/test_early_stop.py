"""The fixed scoring order of early stopping: its parts, on the shipped suites (no model loads)."""

import itertools

from harness.score.suites import load_suite
from harness.sweep.early_stop import ItemOrder, spent


def test_parts_cover_every_item_once_and_tests_come_after_doubling_counts():
    suites = [load_suite("extraction", 30), load_suite("mmlu", 70)]
    order = ItemOrder(suites, {"extraction": 0.5, "mmlu": 0.5}, {"extraction": "field_f1", "mmlu": "acc"}, chunk=8)
    parts = order.chunks()
    tested_at = list(itertools.accumulate(sum(len(piece.rows) for piece in part) for part in parts))
    assert tested_at == [8, 16, 32, 64, 100] and order.looks() == [8, 16, 32, 64]
    start = 0
    for part, end in zip(parts, tested_at, strict=True):  # each part is the next slice of the one fixed sequence
        scored = {(piece.name, str(row["id"])) for piece in part for row in piece.rows}
        assert scored == {k for k, step in order.step.items() if start <= step < end}
        start = end
    assert {piece.name for piece in parts[0]} == {"extraction", "mmlu"}  # every part holds both suites


def test_a_chunk_as_large_as_the_suites_is_one_part_of_whole_suites():
    suites = [load_suite("extraction", 30), load_suite("mmlu", 70)]
    (part,) = ItemOrder(suites, {"extraction": 0.5, "mmlu": 0.5}, {}, chunk=100).chunks()
    assert sorted(part, key=lambda s: s.name) == suites


def test_alpha_is_spent_across_the_looks_and_never_exceeds_alpha():
    assert spent(0.05, 0) == 0 and abs(spent(0.05, 1) - 0.05) < 1e-12
    shares = [spent(0.05, t) for t in (1 / 16, 1 / 8, 1 / 4, 1 / 2)]
    assert shares == sorted(shares) and shares[-1] < 0.05

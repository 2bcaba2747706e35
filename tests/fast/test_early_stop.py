"""The fixed scoring order of early stopping: its parts, on the shipped suites (no model loads)."""

import itertools

from harness.score.suites import load_suite
from harness.sweep.early_stop import ItemOrder


def test_parts_cover_every_item_once_in_order_and_tests_come_after_doubling_counts():
    suites = [load_suite("extraction", 30), load_suite("mmlu", 70)]
    order = ItemOrder(suites, {"extraction": 0.5, "mmlu": 0.5}, {"extraction": "field_f1", "mmlu": "acc"}, chunk=8)
    parts = order.chunks()
    scored = [(piece.name, str(row["id"])) for part in parts for piece in part for row in piece.rows]
    assert scored == sorted(order.step, key=order.step.get)  # every item once, in the sweep's order
    tested_at = list(itertools.accumulate(sum(len(piece.rows) for piece in part) for part in parts))
    assert tested_at == [8, 16, 32, 64, 100]  # a part may span both suites; the last takes the rest
    assert [piece.name for piece in parts[2]] == ["extraction", "mmlu"]


def test_a_chunk_as_large_as_the_suites_is_one_part_of_whole_suites():
    suites = [load_suite("extraction", 30), load_suite("mmlu", 70)]
    (part,) = ItemOrder(suites, {"extraction": 0.5, "mmlu": 0.5}, {}, chunk=100).chunks()
    assert part == suites

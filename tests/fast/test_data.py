"""Training data: nested subsets from one fixed permutation, a held-out tail, clear errors."""

import json

import pytest
from conftest import REPO

from harness.errors import UserError
from harness.train.data import training_split

DATA = REPO / "suites" / "extraction" / "train.jsonl"


def test_subsets_are_nested_and_disjoint_from_heldout():
    small, held_a = training_split(DATA, 64)
    large, held_b = training_split(DATA, 256)
    assert large[:64] == small
    assert held_a == held_b and len(held_a) == 32
    texts = {json.dumps(r) for r in large}
    assert not any(json.dumps(r) in texts for r in held_a)


def test_asking_for_more_rows_than_exist_is_a_clear_error():
    with pytest.raises(UserError, match=r"n_samples=5000 but the file has 2000 rows"):
        training_split(DATA, 5000)

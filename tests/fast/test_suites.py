"""Suites as registered kinds: every kind a config can name is registered, and the shipped suites
load by name from any directory with their own kind."""

import typing

import pytest

from harness.config import SuiteConfig
from harness.score.suites import KINDS, SHIPPED, find_suite_file, load_suite


def test_every_builtin_a_config_can_name_has_a_registered_kind():
    builtins = {a for a in typing.get_args(SuiteConfig.model_fields["builtin"].annotation) if a is not type(None)}
    names = {v for a in builtins for v in typing.get_args(a)} or builtins
    assert names | {"task"} == set(KINDS)


@pytest.mark.parametrize(("ref", "kind", "headline"), [("mmlu", "mmlu", "acc"), ("humaneval", "humaneval", "pass@1"),
                                                        ("extraction", "task", "field_f1")])
def test_shipped_suites_load_by_name_from_any_directory(ref, kind, headline, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert find_suite_file(ref).is_relative_to(SHIPPED)
    suite = load_suite(ref, 12)
    assert suite.kind.name == kind and suite.headline == headline
    assert len(suite.rows) == 12 and len({r["id"] for r in suite.rows}) == 12


def test_a_limit_never_changes_an_items_identity_and_the_scope_applies_the_suites_own_limit():
    small, large = load_suite("mmlu", 20), load_suite("mmlu", 200)
    assert small.version == large.version
    assert {r["id"] for r in small.rows} <= {r["id"] for r in large.rows}
    subjects = {r["subject"] for r in small.rows}
    assert len(subjects) == 20, "MMLU subsets are drawn round-robin over subjects"
    extraction = load_suite("extraction", scope="sweep")
    assert len(extraction.rows) == extraction.config.limit.sweep

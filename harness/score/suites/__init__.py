"""Suites: what is scored. One registered kind per kind of suite (see `_base.py`)."""

from harness.score.suites import humaneval, lmeval_task, mmlu, task  # noqa: F401 - each module registers its kind
from harness.score.suites._base import KINDS, Suite, SuiteKind, kind_of, register
from harness.score.suites.loading import SHIPPED, find_suite_file, load_suite

__all__ = ["KINDS", "SHIPPED", "Suite", "SuiteKind", "find_suite_file", "kind_of", "load_suite", "register"]

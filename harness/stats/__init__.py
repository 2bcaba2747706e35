"""Uncertainty from per-item rows: intervals and one-sided tests that hold at small n and near 0 or 1
(intervals.py), estimates made of independent parts (combined.py: the objective over suites, the
training-seed term), and the items' metrics as a long frame with their summaries (summary.py).
Imports nothing itself: import the module."""

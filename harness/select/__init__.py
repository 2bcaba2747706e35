"""Selecting what ships: leaderboards and reports (report.py, leaderboard.py), the pick rule (pick.py),
the CI gate (gate.py) and the promotion of a winner (promote.py). Everything here reads the store;
nothing here trains or scores (the learning-curve forecast is its own stage, harness/forecast/)."""

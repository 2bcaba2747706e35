"""Selecting what ships: leaderboards and reports (report.py, leaderboard.py), learning-curve forecasts
(forecast.py), the pick rule (pick.py), the CI gate (gate.py) and the promotion of a winner (promote.py).
Everything here reads the store; nothing here trains or scores."""

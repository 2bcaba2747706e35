"""The sweep's live progress line (rich): trial i/N, stage, best so far, elapsed and ETA.

Stage messages are also printed above the line, so a non-interactive log (CI) keeps the history.
Scoring adds its per-suite bars to the same live display (rich allows one live display at a time).
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


class SweepProgress:
    def __init__(self, console, n_trials: int, done: int):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.console = console
        self.bar = None
        if console is not None:
            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                TextColumn("ETA"), TimeRemainingColumn(), console=console)
            self.task = self.bar.add_task("sweep", total=n_trials, completed=done)
        self.best = ""

    def __enter__(self) -> SweepProgress:
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()

    def say(self, text: str) -> None:
        """A stage: printed above the live line and shown in it."""
        if self.bar is None:
            log.info(text)
            return
        self.console.print(text)
        self.bar.update(self.task, description=f"{text[:80]}{self.best}")

    def trial_done(self, done: int, best_number: int | None, best_value: float | None, best_params: dict | None) -> None:
        if best_number is not None:
            shown = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in (best_params or {}).items())
            self.best = f" | best: trial {best_number} = {best_value:.4f} ({shown})"
        if self.bar is not None:
            self.bar.update(self.task, completed=done)

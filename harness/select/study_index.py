"""One page for every study: reports/index.html, rebuilt from each report's card.json.

`harness report` writes its report's card (the study in one line: base, suites, pick, verdict against
the base, forecast sentence, dates) and, for a report in the reports/ folder, rebuilds the index from
every card there. `harness report --all` first reports every study it finds: each runs/<study>/ with
a journal here, and every study in `--storage`.
"""

from __future__ import annotations

import logging
from datetime import datetime
from html import escape
from pathlib import Path
from urllib.parse import quote

from harness.errors import UserError
from harness.runtime.files import atomic_write
from harness.store import documents, paths
from harness.store.documents import BestDoc, ReportCard
from harness.store.reading import StudyData

log = logging.getLogger(__name__)

STYLE = ("body{font-family:sans-serif;margin:2em} table{border-collapse:collapse;font-size:13px} "
         "td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top;text-align:left} "
         ".beats{color:#1a7f37;font-weight:bold} .not{color:#9a6700;font-weight:bold} .none{color:#666}")


def card(data: StudyData, best: BestDoc, verdict: str, curve: str, source: str, where: str | None) -> ReportCard:
    """The report of `data` in one line; `curve`: the report's learning-curve sentence (a forecast, or why none)."""
    complete = data.trials["complete"].dropna() if "complete" in data.trials else []
    last = max(complete).isoformat(timespec="seconds") if len(complete) else None
    return ReportCard(study=data.name, source=source, where=where, base=data.meta.get("base"),
                      suites=list(dict.fromkeys(data.items.suite)) if len(data.items) else list(data.meta.get("weights", {})),
                      candidates=len(data.trials), pick=best.candidate, objective=best.objective, verdict=verdict,
                      beats_base=best.beats_base, forecast=curve or None, last_trial=last,
                      reported=datetime.now().isoformat(timespec="seconds"))  # local time, as Optuna stamps trials


def in_reports_folder(out: Path) -> bool:
    """Is `out` a report folder of the reports/ folder (whose index `report` keeps)?"""
    return Path(out).resolve().parent == paths.REPORTS.resolve()


def write_index(reports: Path = paths.REPORTS) -> tuple[Path, int]:
    """The index page of `reports` from every card.json in its folders; returns it and how many studies it lists."""
    cards = []
    for path in sorted(Path(reports).glob(f"*/{paths.CARD}")):
        try:
            cards.append(documents.read(path, ReportCard))
        except UserError as err:  # one damaged card must not hide the others
            log.warning("left out of the index: %s", err)
    cards.sort(key=lambda c: c.last_trial or c.reported, reverse=True)
    rows = "\n".join(_row(c) for c in cards)
    html = ("<!doctype html><html><head><meta charset='utf-8'><title>harness: every study</title>"
            f"<style>{STYLE}</style></head><body><h1>Every study</h1>"
            f"<p id='count'>{len(cards)} {'study' if len(cards) == 1 else 'studies'} reported in this folder, the most recent "
            "first. Each row links to its report; <code>harness report --all</code> brings every row up to date.</p>"
            "<table id='studies'><thead><tr><th>Study</th><th>Base</th><th>Suites</th><th>Candidates</th><th>Pick</th>"
            "<th>Against the base</th><th>Forecast</th><th>Last trial</th><th>Reported</th></tr></thead>"
            f"<tbody>\n{rows}\n</tbody></table></body></html>")
    index = Path(reports) / paths.REPORT_HTML
    atomic_write(index, html)
    return index, len(cards)


def _row(c: ReportCard) -> str:
    status, css = (("beats the base", "beats") if c.beats_base else
                   ("no base to compare", "none") if c.beats_base is None else ("not shown better than the base", "not"))
    objective = "" if c.objective is None else f" ({c.objective:.4g})"
    cells = [f"<a href='{quote(c.study)}/{paths.REPORT_HTML}'>{escape(c.study)}</a>"
             + (f"<br><small>{escape(c.source)}: {escape(c.where)}</small>" if c.where else ""),
             escape(c.base or "(not recorded)"), escape(", ".join(c.suites)), str(c.candidates),
             f"{escape(c.pick)}{escape(objective)}",
             f"<span class='{css}'>{escape(status)}</span><br>{escape(c.verdict)}",
             escape(c.forecast or ""), _when(c.last_trial), _when(c.reported)]
    return f"<tr data-study='{escape(c.study)}'>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>"


def _when(iso: str | None) -> str:
    """A date to the minute, the full stamp on hover."""
    return f"<span title='{escape(iso)}'>{escape(iso[:16].replace('T', ' '))}</span>" if iso else ""


def studies_here(storage: str | None) -> list[tuple[str, str | None]]:
    """(study, storage) of every study `report --all` reports: runs/<study>/journal.log here, and each study in
    `storage` (which wins where both hold a study of one name: they would write one report folder)."""
    import optuna

    from harness.runtime.secrets import masked_userinfo
    from harness.store.study import shown_url, storage_for

    found: dict[str, str | None] = {p.parent.name: None for p in sorted(paths.RUNS.glob("*/journal.log"))}
    if storage is not None:
        backend = storage_for("", storage)  # a bad URL or an unreachable database: its own one-line error
        try:
            names = optuna.get_all_study_names(backend)
        except Exception as err:  # noqa: BLE001 - a database that cannot be read, in any driver's words
            reason = masked_userinfo(str(err).splitlines()[0][:160]) if str(err) else ""
            raise UserError(f"--storage {shown_url(storage)}: cannot list its studies ({type(err).__name__}: {reason})") from None
        for name in sorted(names):
            if found.get(name, storage) is None:
                log.warning("study %s is both in runs/%s/ and in --storage; reporting the one in --storage", name, name)
            found[name] = storage
    return list(found.items())


def previous_target(out: Path) -> tuple[str, float] | None:
    """The forecast target an earlier report of this folder was given, so `report --all` keeps it."""
    path = Path(out) / paths.BEST
    if not path.is_file():
        return None
    try:
        forecast = documents.read(path, BestDoc).forecast
    except UserError:
        return None
    return (forecast.metric, forecast.target.value) if forecast and forecast.target else None

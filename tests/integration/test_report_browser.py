"""Reports in a real headless browser: the full report (every plot renders, no console errors, nothing
fetched) and the index of every study."""

import json
import subprocess

import browser
import numpy as np
import optuna
import pytest
from conftest import bern, make_study, run_cli


@pytest.mark.needs("chromium")
def test_report_loads_in_a_real_browser_without_console_errors(constructed, tmp_path):
    assert run_cli("report", "picked", cwd=constructed).returncode == 0
    page = constructed / "reports/picked/index.html"
    shot = tmp_path / "report.png"
    # Dump the DOM after scripts ran, and keep the console log; a fresh profile, no network.
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
             "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000"]
    dom = subprocess.run(["chromium", *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    subprocess.run(["chromium", *flags, f"--screenshot={shot}", "--window-size=1400,2400", page.as_uri()],
                   capture_output=True, text=True, timeout=120)
    assert 'id="leaderboard"' in dom.stdout
    for plot in ("learning-curve", "score-vs-lr", "suite-bars", "importances", "timeline"):
        assert f'id="plot-{plot}"' in dom.stdout, plot
    assert dom.stdout.count("main-svg") >= 5, "plotly did not render the plots"
    console_errors = [l for l in dom.stderr.splitlines() if "CONSOLE" in l and ("Error" in l or "error" in l)]
    assert not console_errors, console_errors
    assert shot.is_file() and shot.stat().st_size > 10_000


@pytest.mark.needs("chromium")
def test_report_all_lists_every_study_on_one_page_linking_to_each_report(constructed, tmp_path):
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    mmlu = bern(0.5, 300, 1)
    make_study(constructed, "s1", {
        "base": ({}, {"extraction": {"field_f1": np.zeros(100)}, "mmlu": {"acc": mmlu}}),
        "trial-1": ({"lora_r": 8, "n_samples": 64}, {"extraction": {"field_f1": np.full(100, 0.95)}, "mmlu": {"acc": mmlu}}),
    })
    s1 = optuna.load_study(study_name="s1", storage=JournalStorage(JournalFileBackend(str(constructed / "runs/s1/journal.log"))))
    s1.set_user_attr("objective", {**s1.user_attrs["objective"], "base": "HuggingFaceTB/SmolLM2-135M-Instruct"})
    (constructed / "runs/nothing-yet").mkdir()  # a study whose sweep has not finished a trial
    optuna.create_study(study_name="nothing-yet", storage=JournalStorage(JournalFileBackend(str(constructed / "runs/nothing-yet/journal.log"))))

    proc = run_cli("report", "--all", cwd=constructed)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # one study could not be reported: named, the others reported
    assert "nothing-yet: not reported:" in proc.stderr and "Traceback" not in proc.stderr
    assert "index of 2 studies in reports/index.html" in proc.stdout
    index = constructed / "reports/index.html"
    with browser.page() as tab:
        tab.goto(index.as_uri())
        rows = tab.locator("#studies tbody tr")
        assert rows.count() == 2
        text = {r.get_attribute("data-study"): r.inner_text() for r in rows.all()}
        assert "HuggingFaceTB/SmolLM2-135M-Instruct" in text["s1"] and "extraction, mmlu" in text["s1"]
        assert "trial-1" in text["s1"] and "beats the base" in text["s1"] and "(not recorded)" in text["picked"]
        for study, row in text.items():
            card = json.loads((constructed / f"reports/{study}/card.json").read_text())
            assert card["verdict"] in row and card["pick"] in row and card["forecast"] in row
        browser.screenshot(tab, tmp_path / "study-index.png")
        tab.get_by_role("link", name="picked").click()  # each study links to its own report
        tab.wait_for_load_state()
        assert tab.url.endswith("/reports/picked/index.html") and tab.locator("h1").inner_text() == "picked"
        assert not tab.console_errors, tab.console_errors

    # `report` of one study keeps the index: the other row stays, this one is brought up to date
    before = json.loads((constructed / "reports/s1/card.json").read_text())["reported"]
    proc = run_cli("report", "s1", "--margin", "0.05", cwd=constructed)
    assert proc.returncode == 0 and "index of 2 studies" in proc.stdout, proc.stderr[-2000:]
    assert json.loads((constructed / "reports/s1/card.json").read_text())["reported"] >= before
    # a report written elsewhere (--out) leaves the index alone
    proc = run_cli("report", "s1", "--out", str(tmp_path / "elsewhere"), cwd=constructed)
    assert proc.returncode == 0 and "index of" not in proc.stdout and (tmp_path / "elsewhere/card.json").is_file()

"""The full report in a real headless browser: every plot renders, no console errors, nothing fetched."""

import subprocess

import pytest
from conftest import run_cli


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

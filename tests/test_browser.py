"""The report and the dashboard in a real browser: Debian's Chromium, headless, on pages served
over http on localhost. Chromium is required (.ci/run installs it): these tests fail without it."""

from __future__ import annotations

import functools
import http.server
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest
from PIL import Image

from arch_search.app.report import write_report
from tests.test_report import make_run_dir

pytestmark = [pytest.mark.browser, pytest.mark.slow]

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


def chromium(tmp_path, *args: str) -> subprocess.CompletedProcess:
    exe = next((p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None)
    assert exe, "Chromium not found: apt-get install chromium (.ci/run installs it)"
    profile = tmp_path / f"profile-{time.monotonic_ns()}"  # a new, empty profile per run
    out = subprocess.run([exe, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def dom(tmp_path, url: str, budget_ms: int = 20_000) -> str:
    """The page's DOM after its scripts ran (virtual time: waits for the page's own requests)."""
    return chromium(tmp_path, f"--virtual-time-budget={budget_ms}", "--dump-dom", url).stdout


def screenshot(tmp_path, url: str, name: str, size: str = "1400,2400"):
    path = tmp_path / name
    chromium(tmp_path, "--virtual-time-budget=20000", f"--window-size={size}", f"--screenshot={path}", url)
    return Image.open(path).convert("RGB")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def run_dir(tmp_path):
    path = tmp_path / "run"
    make_run_dir(path, n=60, name="browser_study")
    return path


def test_report_renders_its_plots_in_chromium(run_dir, tmp_path):
    report = write_report(str(run_dir))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(run_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/report.html"
        page = dom(tmp_path, url)
        image = screenshot(tmp_path, url, "report.png")
    finally:
        server.shutdown()
        server.server_close()
    # six figures drawn by plotly.js: each a plot-container with its SVG layers
    assert page.count('class="plot-container plotly"') == 6
    assert page.count('class="main-svg"') >= 12
    assert len(re.findall(r'class="point"', page)) >= 55  # the scatter points of the finished trials
    assert "dense (BERT-base)" in page and "Spearman rank correlation" in page
    assert page.count("<tr>") == 1 + len(report.rows)
    colours = image.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) >= 50, "blank screenshot"
    # each PNG from kaleido is a picture, not a blank canvas
    for png in report.pngs:
        assert len(Image.open(png).convert("RGB").getcolors(maxcolors=1 << 24)) >= 20, png


def test_dashboard_shows_the_study_in_chromium(run_dir, tmp_path):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "arch_search", "dashboard", str(run_dir), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        first = proc.stdout.readline()
        assert first.startswith(f"optuna-dashboard on http://127.0.0.1:{port}/dashboard/"), first
        study_url = re.search(r"study 'browser_study': (\S+)", first).group(1)
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(study_url, timeout=5) as r:
                    assert r.status == 200
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, "dashboard did not start"
                time.sleep(0.5)
        page = dom(tmp_path, study_url)
        image = screenshot(tmp_path, study_url, "dashboard.png", size="1400,1600")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", re.sub(r"<(script|style)\b.*?</\1>", "", page, flags=re.S)))
    assert "browser_study (id=1)" in text
    assert "Best Trials" in text and "Trial 0 Objective Values" in text  # the dense reference is on the front
    assert page.count('class="main-svg"') >= 2  # the dashboard's plotly charts drew
    colours = image.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) >= 50, "blank screenshot"

"""Reports opened in real headless Chromium: scripts run cleanly, banner and sections right."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image

from tests.support.browser import console_errors, dump_dom, screenshot
from tests.support.env import require_binary
from tests.support.runfactory import rendered_store


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return rendered_store(tmp_path_factory)["store"]


def _report(store: Path, verdict: str) -> Path:
    stamp = "20261126T100000-3" if verdict == "valid" else "20261126T110000-4"
    return store / "raftkv-register" / stamp / "report.html"


def _assert_scripts_ok(dom: str, stderr: str) -> None:
    errors = re.search(r'<pre id="js-errors">(.*?)</pre>', dom, re.S)
    assert errors is not None, dom[:500]
    assert errors.group(1) == "", errors.group(1)
    assert 'id="render-status" data-status="scripts-ok"' in dom
    assert console_errors(stderr) == []


@pytest.mark.parametrize("verdict", ["valid", "anomaly"])
def test_report_runs_without_js_errors_and_shows_verdict(store: Path, tmp_path: Path, verdict: str) -> None:
    require_binary("chromium")
    result = dump_dom(tmp_path / "profile", _report(store, verdict))
    dom = result.stdout
    _assert_scripts_ok(dom, result.stderr)
    assert f'class="banner {verdict}" data-verdict="{verdict}"' in dom
    assert ('<section id="counterexample">' in dom) == (verdict == "anomaly")
    assert (f'data-checker="linearizability" data-verdict="{verdict}"') in dom
    found = re.search(r"(\d+) client ops", dom)
    assert found is not None
    n_ops = int(found.group(1))
    assert f'data-ops-drawn="{n_ops}"' in dom  # the canvas script got through all the ops
    assert 'data-laid-out="1"' in dom  # the Raft timeline's zoom script ran


def test_screenshot_of_anomaly_is_produced_with_red_banner(store: Path, tmp_path: Path) -> None:
    require_binary("chromium")
    shot = tmp_path / "report.png"
    screenshot(tmp_path / "profile", _report(store, "anomaly"), shot)
    assert shot.is_file() and shot.stat().st_size > 20_000
    with Image.open(shot) as im:
        assert im.size == (1280, 2400)
        pixel = im.convert("RGB").getpixel((5, 5))
    assert isinstance(pixel, tuple)
    r, g, b = pixel[:3]
    assert (r, g, b) == (0xD7, 0x30, 0x27)  # the anomaly banner colour


def test_error_detector_reports_a_broken_script(store: Path, tmp_path: Path) -> None:
    """The sentinel is meaningful: a page whose script throws is reported as failing."""
    require_binary("chromium")
    html = _report(store, "valid").read_text()
    broken = tmp_path / "broken.html"
    broken.write_text(html.replace("</body>", "<script>null.boom();</script></body>"))
    dom = dump_dom(tmp_path / "profile", broken).stdout
    assert 'data-status="scripts-ok"' not in dom
    assert re.search(r'<pre id="js-errors">[^<]*TypeError', dom)


def test_index_filters_by_verdict_from_url(store: Path, tmp_path: Path) -> None:
    require_binary("chromium")
    result = dump_dom(tmp_path / "profile", store / "index.html", "#verdict=anomaly")
    _assert_scripts_ok(result.stdout, result.stderr)
    rows = re.findall(r'<tr class="(run[^"]*)" data-verdict="(\w+)"', result.stdout)
    assert sorted(rows) == [("run", "anomaly"), ("run hidden", "valid")]
    assert "1 of 2 shown" in result.stdout

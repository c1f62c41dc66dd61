"""Headless Chromium from the standard library only: its command line (``--screenshot``,
``--dump-dom``, ``--log-net-log``, ``--enable-logging=stderr``), no selenium or playwright.

:func:`render` loads a page twice with the same window: once as it is (a screenshot, the
console messages on stderr and the network log), once as a copy with a measuring script
(its ``--dump-dom`` output carries each image's decoded size and position on the page, which
the report itself, having no script, cannot tell).
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

# what a page-independent browser would fetch in the background (updates, sign-in, time)
_QUIET = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--hide-scrollbars",
    "--no-first-run",
    "--disable-extensions",
    "--disable-sync",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--mute-audio",
]

_MEASURE = """<script>
window.addEventListener("load", () => {
  const out = [...document.images].map((img) => {
    const r = img.getBoundingClientRect();
    return {w: img.naturalWidth, h: img.naturalHeight, x: r.left + scrollX, y: r.top + scrollY,
            width: r.width, height: r.height, alt: img.alt};
  });
  const pre = document.createElement("pre");
  pre.id = "abkit-measure";
  pre.textContent = JSON.stringify({images: out, height: document.documentElement.scrollHeight});
  document.body.appendChild(pre);
});
</script>"""


def chromium() -> str | None:
    """The Chromium executable, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def require_chromium() -> str:
    """The executable; a skip when there is none, except in CI (``CI=true``), where a missing
    browser fails the test (CI installs it: .ci/run)."""
    found = chromium()
    if found is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("chromium is missing in CI: apt-get install -y chromium")
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    return found


@dataclass
class Rendered:
    screenshot: Path
    images: list[dict]  # naturalWidth/Height (w, h), page box (x, y, width, height), alt
    page_height: int
    console: list[str]  # console messages (errors, CSP violations, ...)
    requests: list[str]  # URLs the page asked the network for (not data: or file:)


def _run(exe: str, args: list[str], tmp: Path) -> subprocess.CompletedProcess[str]:
    profile = tmp / "profile"
    profile.mkdir(exist_ok=True)
    return subprocess.run(
        [exe, *_QUIET, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _page_requests(netlog: Path) -> list[str]:
    """URLs the page itself requested: the network log's jobs isolated by the page's
    ``file://`` origin (the browser's own background jobs have other keys)."""
    log = json.loads(netlog.read_text())
    names = {v: k for k, v in log["constants"]["logEventTypes"].items()}
    urls = []
    for event in log["events"]:
        params = event.get("params") or {}
        if names.get(event["type"]) != "URL_REQUEST_START_JOB" or "url" not in params:
            continue
        from_page = "file://" in str(params.get("network_isolation_key", ""))
        if from_page and not params["url"].startswith(("file:", "data:")):
            urls.append(params["url"])
    return urls


def render(page: Path, tmp: Path, *, width: int) -> Rendered:
    """Screenshot ``page`` at ``width`` CSS pixels (the whole page) and measure its images."""
    exe = require_chromium()
    measured = tmp / f"measure-{width}.html"
    text = page.read_text(encoding="utf-8")
    # the copy drops the page's Content-Security-Policy so that the measuring script may run
    text = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", text)
    measured.write_text(text.replace("</body>", _MEASURE + "</body>"), encoding="utf-8")
    dom = _run(
        exe,
        [
            f"--window-size={width},2000",
            "--virtual-time-budget=5000",
            "--dump-dom",
            measured.as_uri(),
        ],
        tmp,
    )
    found = re.search(r'<pre id="abkit-measure">(.*?)</pre>', dom.stdout, re.S)
    assert found, f"the page did not finish loading: {dom.stderr[-2000:]}"
    data = json.loads(html.unescape(found.group(1)))
    shot = tmp / f"screenshot-{width}.png"
    netlog = tmp / f"net-{width}.json"
    run = _run(
        exe,
        [
            f"--window-size={width},{data['height']}",
            f"--screenshot={shot}",
            f"--log-net-log={netlog}",
            "--enable-logging=stderr",
            "--v=0",
            page.as_uri(),
        ],
        tmp,
    )
    assert shot.exists(), run.stderr[-2000:]
    console = [line for line in run.stderr.splitlines() if ":CONSOLE" in line]
    return Rendered(
        screenshot=shot,
        images=data["images"],
        page_height=data["height"],
        console=console,
        requests=_page_requests(netlog),
    )

"""Open every page of the built book in headless Chromium, offline, and check what a reader sees.

    python scripts/build_book.py && python scripts/check_book.py [--screenshots DIR]

For each ``book/_build/html/**/*.html`` opened from disk (``file://``), through the Chrome
DevTools Protocol (CDP, over ``websocket-client``):
- every math element Sphinx wrote (``.math``) holds a MathJax ``mjx-container`` with an SVG,
  no TeX error (``merror``) was typeset, and no raw ``$$``, ``$..$``, ``\\(`` or ``\\[`` is left
  in the text outside code;
- every image loaded (``naturalWidth > 0``);
- no request went anywhere but ``file:``/``data:``/``blob:`` (CDP network log), no local file
  failed to load, and no script threw. Host names resolve to nothing
  (``--host-resolver-rules``), so a missed request could not leave the machine either.
Exits 1 with one line per problem. Needs Chromium (Debian: ``apt-get install chromium``) and
``websocket-client`` (the ``book`` extra). ``.ci/run`` runs it after ``build_book.py``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import websocket

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "book" / "_build" / "html"
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--allow-file-access-from-files",
    "--window-size=1280,2000",
    "--remote-debugging-port=0",
]

# Runs in the page once it has loaded; resolves to a JSON-able report.
PAGE_REPORT = r"""
(async () => {
  const timeout = (ms) => new Promise((_, no) => setTimeout(() => no(new Error("timeout")), ms));
  const report = {mathjax: typeof MathJax !== "undefined" && !!(MathJax && MathJax.startup)};
  if (report.mathjax) {
    try { await Promise.race([MathJax.startup.promise, timeout(60000)]); }
    catch (e) { report.mathjaxError = String(e); }
  }
  await Promise.all([...document.images].map((img) => {
    img.loading = "eager";
    return Promise.race([img.decode(), timeout(20000)]).catch(() => null);
  }));
  const math = [...document.querySelectorAll(".math")];
  report.math = math.length;
  report.untypeset = math.filter((n) => !n.querySelector("mjx-container svg"))
                         .map((n) => n.textContent.trim().slice(0, 80));
  report.containers = document.querySelectorAll("mjx-container").length;
  report.svgs = document.querySelectorAll("mjx-container > svg").length;
  report.texErrors = [...document.querySelectorAll('mjx-container [data-mml-node="merror"]')]
      .map((n) => (n.getAttribute("data-mjx-error") || n.textContent || "").slice(0, 80));
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT, {acceptNode: (n) =>
      n.parentElement.closest("pre, code, script, style, textarea, mjx-container")
          ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT});
  report.rawMath = [];
  const raw = /\$\$|\\\(|\\\[|\$[^$\s][^$]*\$/;
  while (walker.nextNode()) {
    const text = walker.currentNode.textContent;
    if (raw.test(text)) report.rawMath.push(text.trim().slice(0, 80));
  }
  report.images = [...document.images].map((img) => ({src: (img.getAttribute("src") || "")
      .slice(0, 80), ok: img.complete && img.naturalWidth > 0}));
  return JSON.stringify(report);
})()
"""


class Tab:
    """A minimal CDP client for one page: commands, and the events seen while waiting."""

    def __init__(self, ws_url: str) -> None:
        self.ws = websocket.create_connection(ws_url, timeout=120, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict] = []

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_for(self, method: str, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while not any(e.get("method") == method for e in self.events):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {method} within {seconds} s")
            self.events.append(json.loads(self.ws.recv()))


def start_chromium(profile: Path) -> tuple[subprocess.Popen, str]:
    """Start headless Chromium on an empty profile; return it and its page's CDP address."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("chrome")
    if exe is None:
        sys.exit("Chromium not found (Debian: apt-get install chromium)")
    cmd = [exe, *FLAGS, f"--user-data-dir={profile}", "about:blank"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    port_file = profile / "DevToolsActivePort"
    deadline = time.monotonic() + 60
    while not (port_file.is_file() and port_file.read_text().strip()):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            sys.exit("Chromium did not start")
        time.sleep(0.2)
    port = port_file.read_text().split()[0]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
        pages = [t for t in json.load(r) if t["type"] == "page"]
    return proc, pages[0]["webSocketDebuggerUrl"]


def check_page(tab: Tab, page: Path, screenshots: Path | None) -> list[str]:
    """Open one page and return its problems (empty when it is fine)."""
    tab.events.clear()
    tab.call("Page.navigate", url=page.as_uri())
    tab.wait_for("Page.loadEventFired")
    result = tab.call("Runtime.evaluate", expression=PAGE_REPORT, awaitPromise=True)
    if "exceptionDetails" in result:
        return [f"the page check itself failed: {result['exceptionDetails']}"]
    report = json.loads(result["result"]["value"])
    problems = []
    if report.get("mathjaxError"):
        problems.append(f"MathJax did not finish: {report['mathjaxError']}")
    if report["math"] and not report["mathjax"]:
        problems.append(f"{report['math']} math elements but no MathJax on the page")
    problems += [f"math not typeset: {t!r}" for t in report["untypeset"]]
    problems += [f"TeX error: {t!r}" for t in report["texErrors"]]
    problems += [f"raw math left in the text: {t!r}" for t in report["rawMath"]]
    problems += [f"image did not load: {i['src']}" for i in report["images"] if not i["ok"]]
    for event in tab.events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            if not url.startswith(LOCAL_SCHEMES):
                problems.append(f"request to the network: {url}")
        elif method == "Network.loadingFailed" and not params.get("canceled"):
            problems.append(f"failed to load: {params.get('errorText')} ({params['requestId']})")
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            text = details.get("exception", {}).get("description", details.get("text"))
            problems.append(f"script error: {str(text)[:160]}")
    if screenshots is not None:
        shot = tab.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        (screenshots / f"{page.stem}.png").write_bytes(base64.b64decode(shot["data"]))
    n_images = len(report["images"])
    print(
        f"{page.name}: {report['math']} math elements, {report['svgs']} SVG "
        f"typeset, {n_images} images, {len(problems)} problems",
        flush=True,
    )
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--html", type=Path, default=HTML, help="the built book")
    parser.add_argument("--screenshots", type=Path, help="save a PNG of each page here")
    args = parser.parse_args(argv)
    pages = sorted(args.html.rglob("*.html"))
    pages = [p for p in pages if "_static" not in p.relative_to(args.html).parts]
    if not pages:
        sys.exit(f"no pages under {args.html}: run python scripts/build_book.py first")
    if args.screenshots:
        args.screenshots.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="scvi-edu-chromium-") as profile:
        proc, ws_url = start_chromium(Path(profile))
        try:
            tab = Tab(ws_url)
            for domain in ("Page", "Network", "Runtime"):
                tab.call(f"{domain}.enable")
            for page in pages:
                problems += [f"{page.relative_to(args.html)}: {p}" for p in check_page(
                    tab, page, args.screenshots)]  # fmt: skip
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, 9)
                proc.wait()
    for line in problems:
        print(line)
    print(f"{len(pages)} pages checked in Chromium, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

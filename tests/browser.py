"""A headless Chromium driven over the DevTools protocol, for testing the built site.

Only what the site tests need: open a page at a given width, wait until MathJax has
typeset it, collect console errors, uncaught exceptions and failed requests, evaluate
JavaScript, and take a full-page screenshot.
"""

from __future__ import annotations

import base64
import functools
import http.server
import itertools
import json
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import websocket  # websocket-client, installed with Jupyter


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


class StaticServer:
    """Serve a folder on 127.0.0.1 in a background thread (``with`` it)."""

    def __init__(self, root: Path):
        handler = functools.partial(_QuietHandler, directory=str(root))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self):
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class Browser:
    """One headless Chromium process; :meth:`open` visits a page in a fresh tab."""

    def __init__(self, executable: str):
        # Chromium's helper processes can still be writing there as it is removed.
        self.profile = tempfile.TemporaryDirectory(ignore_cleanup_errors=True)
        self.process = subprocess.Popen(
            [executable, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--no-first-run", "--disable-quic", "--hide-scrollbars", "--remote-debugging-port=0",
             f"--user-data-dir={self.profile.name}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        port_file = Path(self.profile.name) / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text().strip():
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.close()
                raise RuntimeError("Chromium did not start")
            time.sleep(0.1)
        port, path = port_file.read_text().split()[:2]
        self.socket = websocket.create_connection(f"ws://127.0.0.1:{port}{path}", timeout=60)
        self.ids = itertools.count(1)
        self.events: list[dict] = []

    def close(self):
        if getattr(self, "socket", None):
            self.socket.close()
        self.process.kill()
        self.process.wait()
        self.profile.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def call(self, method: str, session: str | None = None, **params):
        message_id = next(self.ids)
        message = {"id": message_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        self.socket.send(json.dumps(message))
        while True:
            reply = json.loads(self.socket.recv())
            if reply.get("id") == message_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def pump(self, seconds: float) -> None:
        """Collect events for ``seconds``."""
        self.socket.settimeout(0.2)
        deadline = time.monotonic() + seconds
        try:
            while time.monotonic() < deadline:
                try:
                    self.events.append(json.loads(self.socket.recv()))
                except websocket.WebSocketTimeoutException:
                    pass
        finally:
            self.socket.settimeout(60)

    def open(self, url: str, width: int = 1280, height: int = 900, dark: bool = False) -> "Page":
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable", session)
        page = Page(self, session, target, (width, height, width < 600))
        page._viewport(*page.metrics)
        if dark:
            self.call("Emulation.setEmulatedMedia", session,
                      features=[{"name": "prefers-color-scheme", "value": "dark"}])
        self.events.clear()
        self.call("Page.navigate", session, url=url)
        page.wait_until_ready()
        return page


class Page:
    def __init__(self, browser: Browser, session: str, target: str, metrics: tuple[int, int, bool]):
        self.browser, self.session, self.target = browser, session, target
        self.metrics = metrics  # the viewport's width, height and whether it is a phone's

    def evaluate(self, expression: str, await_promise: bool = False):
        result = self.browser.call("Runtime.evaluate", self.session, expression=expression,
                                   returnByValue=True, awaitPromise=await_promise)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:60]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_until_ready(self, timeout: float = 30) -> None:
        """Until the document has loaded, MathJax (if present) has typeset it, and the
        network has been quiet for a moment."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.evaluate("document.readyState") == "complete":
                break
            self.browser.pump(0.2)
        self.evaluate(
            "window.MathJax && MathJax.startup && MathJax.startup.promise "
            "? MathJax.startup.promise.then(() => true) : true", await_promise=True)
        self.evaluate("document.fonts ? document.fonts.ready.then(() => true) : true",
                      await_promise=True)
        self.browser.pump(0.5)

    def problems(self) -> list[str]:
        """Console errors, uncaught exceptions and failed requests seen by this tab."""
        found = []
        for event in self.browser.events:
            if event.get("sessionId") != self.session:
                continue
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                found.append("exception: " + details.get("exception", {}).get("description", details.get("text", "")))
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                found.append("console.error: " + " ".join(str(a.get("value", a.get("description", "")))
                                                          for a in params.get("args", [])))
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                entry = params["entry"]
                found.append(f"log: {entry.get('text')} {entry.get('url', '')}".strip())
            elif method == "Network.loadingFailed" and not params.get("canceled"):
                found.append(f"request failed: {params.get('errorText')}")
            elif method == "Network.responseReceived" and params["response"]["status"] >= 400:
                found.append(f"HTTP {params['response']['status']}: {params['response']['url']}")
        return found

    def screenshot(self, path: Path) -> None:
        """The whole page, top to bottom. The viewport is stretched to the document's height
        for the capture and then put back: Chromium's own ``captureBeyondViewport`` drew
        some pages shifted sideways, their left edge cut off, though nothing overflowed."""
        width, height, mobile = self.metrics
        full = self.evaluate("Math.ceil(document.documentElement.scrollHeight)")
        self._viewport(width, max(height, full), mobile)
        try:
            self.browser.pump(0.2)
            data = self.browser.call("Page.captureScreenshot", self.session, format="png")["data"]
        finally:
            self._viewport(width, height, mobile)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))

    def _viewport(self, width: int, height: int, mobile: bool) -> None:
        self.browser.call("Emulation.setDeviceMetricsOverride", self.session, width=width,
                          height=height, deviceScaleFactor=1, mobile=mobile)

    def close(self) -> None:
        self.browser.call("Target.closeTarget", targetId=self.target)

"""A small headless-Chromium driver for the HTML page tests (Chrome DevTools Protocol over a websocket).

``Browser()`` starts Debian's ``chromium`` with networking side channels off; ``open(path)``
loads a page and records every network request, console message, uncaught exception and dialog
(an ``alert`` from injected markup would show up here); ``eval(js)`` returns a JSON value.
``SKIP`` is the reason to skip when chromium or websocket-client is missing.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Optional

try:
    import websocket
except ImportError:  # the [test] extra brings it
    websocket = None

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SKIP: Optional[str] = (None if CHROMIUM and websocket else
                       "needs Debian's chromium (apt-get install chromium) and websocket-client"
                       if not CHROMIUM else "needs websocket-client (pip install -e '.[test]')")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--remote-debugging-port=0", "--window-size=1400,1000"]


class Browser:
    """One headless chromium and one page target; use as a context manager."""

    def __init__(self, timeout: float = 30.0) -> None:
        self.profile = tempfile.mkdtemp(prefix="archstat-chromium-")
        self.proc = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while not (port_file.is_file() and port_file.read_text().count("\n") >= 1):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.close()
                raise RuntimeError("chromium did not open its debugging port")
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # localhost only, never a proxy
        targets = json.loads(opener.open(f"http://127.0.0.1:{port}/json/list", timeout=timeout).read())
        page = next(t for t in targets if t["type"] == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=timeout, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict] = []
        for domain in ("Page", "Runtime", "Network", "Log"):
            self.call(f"{domain}.enable")

    def call(self, method: str, **params: Any) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)
            if msg.get("method") == "Page.javascriptDialogOpening":  # never leave the page blocked
                self.ws.send(json.dumps({"id": 0, "method": "Page.handleJavaScriptDialog", "params": {"accept": True}}))

    def open(self, path: Path, timeout: float = 20.0) -> float:
        """Load ``path`` and wait until the page script has run; returns the seconds it took."""
        self.events.clear()
        start = time.perf_counter()
        self.call("Page.navigate", url=Path(path).resolve().as_uri())
        while time.perf_counter() - start < timeout:
            if self.eval("document.readyState === 'complete' && document.body && document.body.dataset.ready === '1'"):
                self.eval("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))", promise=True)
                return time.perf_counter() - start
            time.sleep(0.02)
        raise TimeoutError(f"{path} did not finish loading in {timeout} s")

    def eval(self, expression: str, promise: bool = False) -> Any:
        res = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=promise)
        if "exceptionDetails" in res:
            raise RuntimeError(f"{expression}: {res['exceptionDetails'].get('text')}")
        return res["result"].get("value")

    def requests(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.events if e.get("method") == "Network.requestWillBeSent"]

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions, log errors and dialogs since the last ``open``."""
        out = []
        for e in self.events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append(f"console: {p.get('args')}")
            elif m == "Runtime.exceptionThrown":
                out.append(f"exception: {p['exceptionDetails'].get('text')}")
            elif m == "Log.entryAdded" and p["entry"].get("level") == "error":
                out.append(f"log: {p['entry'].get('text')}")
            elif m == "Page.javascriptDialogOpening":
                out.append(f"dialog: {p.get('message')}")
        return out

    def close(self) -> None:
        if getattr(self, "ws", None):
            self.ws.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

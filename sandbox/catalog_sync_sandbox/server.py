"""Run the sandbox in a background thread on a free loopback port: for tests, notebooks and demos.

    with SandboxServer(db_url) as sandbox:
        sandbox.load("/path/to/luma")
        requests.get(f"{sandbox.url}/erp/items", headers={"X-Api-Key": sandbox.credentials["erp"]["api_key"]})
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from types import TracebackType
from typing import Any

import uvicorn

from catalog_sync_sandbox.state import DEFAULT_CREDENTIALS


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def control(url: str, method: str, path: str, body: Any = None, timeout: float = 600) -> Any:
    """Call the ``/_sandbox`` control API of a running sandbox; raises RuntimeError with the server's message."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{url.rstrip('/')}/_sandbox/{path.lstrip('/')}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            raw = resp.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", errors="replace")[:500]
        raise RuntimeError(f"sandbox {method} /_sandbox/{path} answered {exc.code}: {detail}") from None
    return json.loads(raw) if raw else None


class SandboxServer:
    """A sandbox served by uvicorn in a daemon thread; ``url`` is its base URL once started."""

    def __init__(self, db_url: str, host: str = "127.0.0.1", port: int | None = None) -> None:
        from catalog_sync_sandbox.app import create_app

        self.host = host
        self.port = port or free_port(host)
        self.url = f"http://{host}:{self.port}"
        self.app = create_app(db_url)
        self.credentials: dict[str, dict[str, str]] = self.app.state.sandbox.credentials
        config = uvicorn.Config(self.app, host=host, port=self.port, log_level="warning", access_log=False,
                                timeout_graceful_shutdown=2, lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=f"sandbox-{self.port}", daemon=True)

    @property
    def state(self) -> Any:
        """The in-process :class:`~catalog_sync_sandbox.state.SandboxState` (settings, faults, engine)."""
        return self.app.state.sandbox

    def start(self, timeout: float = 20) -> SandboxServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the sandbox did not start on {self.url}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]) -> None:
        self.stop()

    # ------------------------------------------------------------------------------------- control helpers
    def load(self, catalog: str, scale: int | None = None) -> dict[str, Any]:
        return control(self.url, "POST", "load", {"catalog": str(catalog), "scale": scale})

    def reset(self) -> None:
        control(self.url, "POST", "reset")

    def scenario(self, name: str, skus: list[str] | None = None) -> dict[str, Any]:
        return control(self.url, "POST", f"scenarios/{name}", {"skus": skus})

    def set_faults(self, system: str, **faults: Any) -> dict[str, Any]:
        return control(self.url, "PUT", f"faults/{system}", faults)

    def clear_faults(self, system: str | None = None) -> None:
        from catalog_sync_sandbox.faults import SYSTEMS

        for name in [system] if system else SYSTEMS:
            control(self.url, "DELETE", f"faults/{name}")

    def settings(self, **changes: Any) -> dict[str, Any]:
        return control(self.url, "PUT", "settings", changes)

    def concurrency(self, system: str | None = None) -> dict[str, Any]:
        """Requests in flight (``in_flight``), the most at once since the last reset (``peak``) and ``refused``,
        for every system or for ``system`` (``GET /_sandbox/concurrency``)."""
        return control(self.url, "GET", f"concurrency/{system}" if system else "concurrency")

    def reset_concurrency(self) -> None:
        control(self.url, "DELETE", "concurrency")


__all__ = ["SandboxServer", "control", "free_port", "DEFAULT_CREDENTIALS"]

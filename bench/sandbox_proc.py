"""A sandbox in its own process (so its CPU is not billed to Catalog Sync's interpreter), loaded at a scale."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.common import LUMA, PY, ROOT

#: Storefront call limits used by the benchmarks: effectively unlimited (see BENCHMARKS.md for why).
UNLIMITED_STOREFRONT = {"storefront_points_max": 1_000_000_000, "storefront_points_restore_per_s": 1_000_000_000.0}


class SandboxProcess:
    def __init__(self, workdir: Path, name: str = "sandbox") -> None:
        from catalog_sync_sandbox.server import free_port

        self.db_url = f"sqlite:///{workdir / (name + '.sqlite')}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(workdir / f"{name}.log", "w")  # noqa: SIM115
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, plan: str = "plus") -> SandboxProcess:
        env = {**os.environ}
        self.proc = subprocess.Popen(
            [PY, "-m", "catalog_sync.cli", "sandbox", "serve", "--port", str(self.port), "--db", self.db_url,
             "--storefront-plan", plan], cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.url}/_sandbox/settings", timeout=2).read()
                return self
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"sandbox exited: see {self.log.name}") from None
                time.sleep(0.3)
        raise RuntimeError("sandbox did not start in 60 s")

    def control(self, method: str, path: str, body: Any = None) -> Any:
        from catalog_sync_sandbox.server import control

        return control(self.url, method, path, body, timeout=7200)

    def load(self, scale: int | None) -> dict[str, Any]:
        """Load the catalog, then create the PIM structure it needs, as ``catalog-sync pim bootstrap`` does."""
        from catalog_sync.connectors import PimClient
        from catalog_sync.governance.pim_bootstrap import bootstrap

        summary: dict[str, Any] = self.control("POST", "load", {"catalog": str(LUMA), "scale": scale, "reset": True})
        with PimClient(f"{self.url}/pim", self.credentials["pim"]) as pim:
            bootstrap(pim)
        return summary

    def settings(self, **changes: Any) -> Any:
        return self.control("PUT", "settings", changes)

    @property
    def credentials(self) -> dict[str, dict[str, str]]:
        return self.control("GET", "credentials")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


def write_template(workdir: Path, name: str, scale: int, template: Path) -> None:
    """Load a catalog of ``scale`` SKUs into a sandbox of its own (in ``workdir``) and keep its SQLite file as
    ``template``, unless that file exists already."""
    if not template.exists():
        loader = SandboxProcess(workdir, f"{name}-template").start("plus")
        try:
            started = time.perf_counter()
            loader.load(scale)
            print(f"sandbox template of {scale:,} SKUs loaded in {time.perf_counter() - started:.0f} s", flush=True)
        finally:
            loader.stop()
        template.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(workdir / f"{name}-template.sqlite", template)


def from_template(workdir: Path, name: str, scale: int, template: Path) -> SandboxProcess:
    """A started sandbox ``name`` in ``workdir`` holding the catalog of ``template`` (a loaded sandbox's SQLite
    file), loaded at ``scale`` and written there first when the file does not exist yet. Every sandbox started
    from one template holds the same catalog, and copying the file takes seconds where loading takes minutes."""
    write_template(workdir, name, scale, template)
    shutil.copyfile(template, workdir / f"{name}.sqlite")
    return SandboxProcess(workdir, name).start("plus")

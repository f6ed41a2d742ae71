"""`make freeze`: rewrite the pin files from what is installed in the development environment.

requirements.txt gets the runtime set: every distribution reachable from the product package's own dependencies
and the deployment's extras below (what the production image installs). sandbox/requirements.txt gets what the
sandbox adds to that; requirements-dev.txt the rest (test, lint and benchmark tools). Each is pinned to the version
installed here, so the three files always describe one environment that was installed and tested together.
"""

from __future__ import annotations

import importlib.metadata as md
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
OWN = {"catalog-sync", "catalog-sync-sandbox"}
#: Installed in production beside the package though it imports none of them: the Celery executor and its Redis
#: broker, SMTP notifications, object storage, the standard operators, and asyncpg (Airflow's async engine on
#: PostgreSQL). Airflow's metadata and the hub use psycopg 3, a dependency of the package; the postgres provider
#: (which would add psycopg2) is not installed, as nothing uses its hooks.
DEPLOYMENT = ["apache-airflow-providers-celery", "apache-airflow-providers-smtp", "apache-airflow-providers-standard",
              "apache-airflow-providers-common-io", "redis", "asyncpg"]
#: Never pinned: the installer itself (setuptools is pinned: it builds the packages without isolation).
INSTALLER = {"pip"}


def _installed() -> dict[str, md.Distribution]:
    return {canonicalize_name(d.metadata["Name"]): d for d in md.distributions()}


def _closure(roots: list[str], dists: dict[str, md.Distribution]) -> set[str]:
    seen: set[tuple[str, frozenset[str]]] = set()
    stack = [(canonicalize_name(r), frozenset[str]()) for r in roots]
    while stack:
        name, extras = stack.pop()
        if (name, extras) in seen or name not in dists:
            continue
        seen.add((name, extras))
        for spec in dists[name].requires or []:
            req = Requirement(spec)
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in (extras or {""})):
                stack.append((canonicalize_name(req.name), frozenset(req.extras)))
    return {name for name, _ in seen}


def _pins(names: set[str], dists: dict[str, md.Distribution]) -> list[str]:
    return sorted((f"{dists[n].metadata['Name']}=={dists[n].version}" for n in names - OWN - INSTALLER),
                  key=str.lower)


def _write(path: Path, pins: list[str]) -> None:
    header = [line for line in path.read_text().splitlines() if line.startswith(("#", "-r "))]
    path.write_text("\n".join([*header, *pins]) + "\n")


def main() -> None:
    dists = _installed()
    runtime = _closure(["catalog-sync", *DEPLOYMENT], dists)
    sandbox = _closure(["catalog-sync-sandbox"], dists) - runtime
    dev = set(dists) - runtime - sandbox
    _write(ROOT / "requirements.txt", _pins(runtime, dists))
    _write(ROOT / "sandbox" / "requirements.txt", _pins(sandbox, dists))
    _write(ROOT / "requirements-dev.txt", _pins(dev, dists))


if __name__ == "__main__":
    main()

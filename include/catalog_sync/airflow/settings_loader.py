"""Load ``airflow_settings.yaml`` (the Astro CLI format) into Airflow: connections, pools and variables.

``python -m catalog_sync.airflow.settings_loader airflow_settings.yaml`` is what ``make run`` and the Docker
Compose ``airflow-init`` service call; ``astro dev object import`` reads the same file on Astro.

The loading goes through Airflow's own CLI (``airflow connections import --overwrite``, ``airflow pools import``,
``airflow variables import -a overwrite``) rather than through the ORM, so validation and storage (encryption of
passwords and extras with the Fernet key included) are exactly Airflow's, whichever metadata database is
configured. Every command overwrites what exists, so loading the file twice leaves the same state.

Secrets: the JSON files handed to the CLI are created readable by the owner only, in a temporary folder deleted
afterwards whatever happens, and any CLI output shown on failure has every password and secret-looking extra
replaced by ``***`` first.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml

log = logging.getLogger(__name__)

#: Astro CLI connection keys -> ``airflow.models.Connection`` constructor arguments.
_CONNECTION_FIELDS = {
    "conn_type": "conn_type",
    "conn_host": "host",
    "conn_schema": "schema",
    "conn_login": "login",
    "conn_password": "password",
    "conn_port": "port",
    "conn_extra": "extra",
    "conn_description": "description",
}
#: Extra keys whose values are credentials and must never reach a log line.
_SECRET_MARKERS = ("secret", "password", "token", "key", "credential")


class SettingsError(ValueError):
    """``airflow_settings.yaml`` is malformed, or Airflow refused part of it."""


@dataclass(frozen=True)
class ImportFiles:
    """The three JSON documents the Airflow CLI imports, plus the values to hide from any output."""

    connections: dict[str, dict[str, Any]]
    pools: dict[str, dict[str, Any]]
    variables: dict[str, str]
    secrets: frozenset[str] = field(default=frozenset(), repr=False)


@dataclass(frozen=True)
class LoadResult:
    connections: tuple[str, ...]
    pools: tuple[str, ...]
    variables: tuple[str, ...]


def _entries(section: Any, name: str) -> list[Mapping[str, Any]]:
    if section is None:
        return []
    if not isinstance(section, list) or not all(isinstance(e, Mapping) for e in section):
        raise SettingsError(f"airflow.{name} must be a list of mappings")
    return section


def _is_secret_key(key: str) -> bool:
    return any(marker in key.lower() for marker in _SECRET_MARKERS)


def _replace_url_host(value: Any, replace_hosts: Mapping[str, str],
                      replace_ports: Mapping[int, int] | None = None) -> Any:
    """``value`` with its host (and port) rewritten when it is an http(s) URL on one of ``replace_hosts`` (or
    ``replace_ports``); else unchanged."""
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        return value
    parts = urlsplit(value)
    host, port = parts.hostname or "", parts.port
    new_port = (replace_ports or {}).get(port, port) if port is not None else None
    if host not in replace_hosts and new_port == port:
        return value
    netloc = replace_hosts.get(host, host) + (f":{new_port}" if new_port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def to_import_files(settings: Mapping[str, Any], *, replace_hosts: Mapping[str, str] | None = None,
                    replace_ports: Mapping[int, int] | None = None) -> ImportFiles:
    """Convert the parsed Astro-format settings into the JSON shapes ``airflow ... import`` expects.

    ``replace_hosts`` rewrites connection hosts (``{"127.0.0.1": "sandbox"}`` inside Docker Compose, where the
    sandbox is a service and not the loopback address), in the host field and in URLs of the extra (the CDN's
    ``site_url``); ``replace_ports`` rewrites ports the same way (``{8765: 9876}`` when ``make run`` starts the
    sandbox on ``CATALOG_SYNC_SANDBOX_PORT``).
    """
    root = settings.get("airflow") if isinstance(settings, Mapping) else None
    if not isinstance(root, Mapping):
        raise SettingsError("expected a top-level 'airflow:' mapping (Astro CLI airflow_settings.yaml format)")
    replace_hosts = replace_hosts or {}
    replace_ports = replace_ports or {}
    secrets: set[str] = set()

    connections: dict[str, dict[str, Any]] = {}
    for i, entry in enumerate(_entries(root.get("connections"), "connections")):
        conn_id = entry.get("conn_id")
        if not conn_id or not isinstance(conn_id, str):
            raise SettingsError(f"airflow.connections[{i}]: conn_id is required")
        if conn_id in connections:
            raise SettingsError(f"airflow.connections: {conn_id!r} is defined twice")
        unknown = set(entry) - set(_CONNECTION_FIELDS) - {"conn_id"}
        if unknown:
            raise SettingsError(f"connection {conn_id!r}: unknown keys {sorted(unknown)}")
        if not entry.get("conn_type"):
            raise SettingsError(f"connection {conn_id!r}: conn_type is required")
        conn: dict[str, Any] = {}
        for astro_key, airflow_key in _CONNECTION_FIELDS.items():
            value = entry.get(astro_key)
            if value is None or value == "":
                continue  # Airflow stores "not set" as NULL; an empty string would be a value
            if astro_key == "conn_port":
                try:
                    value = int(value)
                except (TypeError, ValueError):
                    raise SettingsError(f"connection {conn_id!r}: conn_port must be a number") from None
                value = replace_ports.get(value, value)
            elif astro_key == "conn_extra":
                if isinstance(value, str):
                    try:
                        value = json.loads(value)
                    except json.JSONDecodeError:
                        raise SettingsError(f"connection {conn_id!r}: conn_extra must be a mapping or JSON") from None
                if not isinstance(value, Mapping):
                    raise SettingsError(f"connection {conn_id!r}: conn_extra must be a mapping")
                secrets.update(str(v) for k, v in value.items() if _is_secret_key(str(k)) and v not in (None, ""))
                value = json.dumps({k: _replace_url_host(v, replace_hosts, replace_ports) for k, v in value.items()},
                                   sort_keys=True)
            elif astro_key == "conn_host":
                value = replace_hosts.get(str(value), str(value))
            elif astro_key == "conn_password":
                value = str(value)
                secrets.add(value)
            conn[airflow_key] = value
        connections[conn_id] = conn

    pools: dict[str, dict[str, Any]] = {}
    for i, entry in enumerate(_entries(root.get("pools"), "pools")):
        name = entry.get("pool_name")
        if not name or not isinstance(name, str):
            raise SettingsError(f"airflow.pools[{i}]: pool_name is required")
        if name in pools:
            raise SettingsError(f"airflow.pools: {name!r} is defined twice")
        slots = entry.get("pool_slot")
        if isinstance(slots, bool) or not isinstance(slots, int) or slots < 0:
            raise SettingsError(f"pool {name!r}: pool_slot must be a whole number >= 0")
        pools[name] = {
            "slots": slots,
            "description": str(entry.get("pool_description") or ""),
            # Astro's format has no such field; Airflow's default keeps deferred tasks out of the pool's count.
            "include_deferred": False,
        }

    variables: dict[str, str] = {}
    for i, entry in enumerate(_entries(root.get("variables"), "variables")):
        name = entry.get("variable_name")
        if not name or not isinstance(name, str):
            raise SettingsError(f"airflow.variables[{i}]: variable_name is required")
        if name in variables:
            raise SettingsError(f"airflow.variables: {name!r} is defined twice")
        value = entry.get("variable_value")
        # Astro stores every value as text; a YAML number or mapping is kept as its JSON text.
        if value is None:
            variables[name] = ""
        elif isinstance(value, str):
            variables[name] = value
        else:
            variables[name] = json.dumps(value)
        if _is_secret_key(name) and variables[name]:
            secrets.add(variables[name])

    return ImportFiles(connections, pools, variables, frozenset(s for s in secrets if s))


def read_settings(path: str | Path) -> dict[str, Any]:
    """Parse an ``airflow_settings.yaml`` file (an empty ``airflow:`` section is fine)."""
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SettingsError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(document, dict):
        raise SettingsError(f"{path}: expected a top-level 'airflow:' mapping")
    if document.get("airflow") is None:
        document["airflow"] = {}
    return document


def redact(text: str, secrets: frozenset[str]) -> str:
    """``text`` with every secret value replaced by ``***`` (longest first, so no secret is half-hidden)."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def _airflow_command() -> str:
    # Prefer the airflow next to this interpreter: `python -m ...` from a venv works without activating it.
    sibling = Path(sys.executable).with_name("airflow")
    if sibling.exists():
        return str(sibling)
    found = shutil.which("airflow")
    if found is None:
        raise SettingsError("the airflow command was not found next to this Python nor on PATH")
    return found


# Airflow's import commands report some rejected entries on stdout and still exit 0.
_SOFT_FAILURES = ("Could not import", "failed to be updated", "Variable import failed")


def _run(args: Sequence[str], secrets: frozenset[str], env: Mapping[str, str] | None) -> str:
    result = subprocess.run(
        list(args), capture_output=True, text=True, env=dict(env) if env is not None else None, check=False
    )
    output = redact(f"{result.stdout}\n{result.stderr}".strip(), secrets)
    if result.returncode != 0 or any(marker in result.stdout for marker in _SOFT_FAILURES):
        what = " ".join(Path(a).name if i == 0 else a for i, a in enumerate(args[:3]))
        raise SettingsError(f"`{what}` failed (exit {result.returncode}):\n{output}")
    return output


def load_settings(
    path: str | Path,
    *,
    replace_hosts: Mapping[str, str] | None = None,
    replace_ports: Mapping[int, int] | None = None,
    env: Mapping[str, str] | None = None,
    airflow: str | None = None,
) -> LoadResult:
    """Import the connections, pools and variables of ``path`` into the Airflow that ``env`` configures.

    ``env`` defaults to this process's environment (``AIRFLOW_HOME``, ``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN``...).
    Sections that are empty are skipped. Raises SettingsError, with secrets redacted, if Airflow refuses anything.
    """
    files = to_import_files(read_settings(path), replace_hosts=replace_hosts, replace_ports=replace_ports)
    command = airflow or _airflow_command()
    documents: dict[str, dict[str, Any]] = {
        "connections": files.connections,
        "pools": files.pools,
        "variables": files.variables,
    }
    with tempfile.TemporaryDirectory(prefix="catalog-sync-settings-") as tmp:
        for name, document in documents.items():
            if not document:
                continue
            target = Path(tmp) / f"{name}.json"
            # Created 0600 before anything is written: the connections file holds passwords in clear.
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(document, handle)
            if name == "connections":
                args = [command, "connections", "import", str(target), "--overwrite"]
            elif name == "pools":
                args = [command, "pools", "import", str(target)]
            else:
                args = [command, "variables", "import", str(target), "--action-on-existing-key", "overwrite"]
            _run(args, files.secrets, env)
            log.info("imported %d %s from %s", len(document), name, path)
    return LoadResult(tuple(files.connections), tuple(files.pools), tuple(files.variables))


def _host_pair(text: str) -> tuple[str, str]:
    old, sep, new = text.partition("=")
    if not sep or not old or not new:
        raise argparse.ArgumentTypeError(f"expected OLD=NEW, got {text!r}")
    return old, new


def _port_pair(text: str) -> tuple[int, int]:
    old, new = _host_pair(text)
    try:
        pair = int(old), int(new)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected two port numbers OLD=NEW, got {text!r}") from None
    if not all(0 < port < 65536 for port in pair):
        raise argparse.ArgumentTypeError(f"a port is between 1 and 65535, got {text!r}")
    return pair


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m catalog_sync.airflow.settings_loader",
        description="Load airflow_settings.yaml (Astro CLI format) into Airflow; safe to run repeatedly.",
    )
    parser.add_argument("path", type=Path, help="the airflow_settings.yaml file")
    parser.add_argument(
        "--replace-host",
        action="append",
        type=_host_pair,
        default=[],
        metavar="OLD=NEW",
        help="rewrite a connection host, e.g. 127.0.0.1=sandbox inside Docker Compose (repeatable)",
    )
    parser.add_argument(
        "--replace-port",
        action="append",
        type=_port_pair,
        default=[],
        metavar="OLD=NEW",
        help="rewrite a connection port, e.g. 8765=9876 for a sandbox on another port (repeatable)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not args.path.is_file():
        print(f"settings_loader: {args.path} does not exist", file=sys.stderr)
        return 2
    try:
        result = load_settings(args.path, replace_hosts=dict(args.replace_host), replace_ports=dict(args.replace_port))
    except SettingsError as exc:
        print(f"settings_loader: {exc}", file=sys.stderr)
        return 1
    print(
        f"Loaded {len(result.connections)} connection(s), {len(result.pools)} pool(s) and "
        f"{len(result.variables)} variable(s) from {args.path}"
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""Credentials of each system. ``repr`` never shows a secret, so a credentials object is safe in a log line."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ApiKeyCredentials:
    """ERP, DAM and supplier portal: one API key sent in ``X-Api-Key``."""

    api_key: str = field(repr=False)

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.api_key,)


@dataclass(frozen=True)
class StorefrontCredentials:
    """Shopify Admin API: a private app's access token sent in ``X-Shopify-Access-Token``."""

    access_token: str = field(repr=False)

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.access_token,)


@dataclass(frozen=True)
class PimCredentials:
    """Akeneo: an API connection (client id and secret) plus the user it acts as (password grant)."""

    client_id: str
    client_secret: str = field(repr=False)
    username: str = ""
    password: str = field(default="", repr=False)

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.client_secret, self.password)


@dataclass(frozen=True)
class CdnCredentials:
    """Fastly: an API token (sent in ``Fastly-Key``) allowed to purge, and the service that caches the pages."""

    api_token: str = field(repr=False)
    service_id: str = ""

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.api_token,)


@dataclass(frozen=True)
class AdobeCommerceCredentials:
    """Adobe Commerce: an integration's access token, sent as ``Authorization: Bearer <token>``."""

    access_token: str = field(repr=False)

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.access_token,)


Credentials = ApiKeyCredentials | StorefrontCredentials | PimCredentials | CdnCredentials | AdobeCommerceCredentials


def coerce(kind: type[Any], value: Any) -> Any:
    """Accept a credentials object, a mapping of its fields, or (for a single-secret system) a bare string."""
    if isinstance(value, kind):
        return value
    if isinstance(value, str):
        if kind is ApiKeyCredentials:
            return ApiKeyCredentials(value)
        if kind is StorefrontCredentials:
            return StorefrontCredentials(value)
        if kind is AdobeCommerceCredentials:
            return AdobeCommerceCredentials(value)
    if isinstance(value, Mapping):
        names = set(kind.__dataclass_fields__)
        aliases = {"key": "api_key", "token": "access_token", "secret": "client_secret"}
        fields = {aliases.get(str(k), str(k)): v for k, v in value.items()}
        return kind(**{k: v for k, v in fields.items() if k in names})
    raise TypeError(f"cannot build {kind.__name__} from a {type(value).__name__}")

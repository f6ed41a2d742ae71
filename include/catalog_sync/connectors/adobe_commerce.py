"""Adobe Commerce (Magento 2.4) as a sales channel: the admin REST API client a "publish to channel" step calls.

Relies only on Adobe's published REST reference and guides (the schema is
``../shared/specs/adobe-commerce-2.4.9-admin-rest.json``; the decisions are docs/adr/0014-adobe-commerce-channel.md):

* Auth: an integration's access token as a Bearer token
  (https://developer.adobe.com/commerce/webapi/get-started/authentication/gs-authentication-token/). Since 2.4.4
  the store must allow it (*Stores > Configuration > Services > OAuth > Consumer Settings > Allow OAuth Access
  Tokens to be used as standalone Bearer tokens*); a token is never renewed, so a 401 fails fast.
* Scope in the path: admin values through ``/rest/all/V1/...``, a store view's values through
  ``/rest/<store_code>/V1/...`` (saving through a store view's path writes store-level values there, which is why
  base values never go through ``/rest/default``: magento/magento2#9186).
* Products go through the asynchronous bulk endpoints
  (https://developer.adobe.com/commerce/webapi/rest/use-rest/asynchronous-web-endpoints/):
  ``POST /rest/all/async/bulk/V1/products`` with an array of ``{"product": ...}`` operations, children linked with
  ``POST /rest/all/async/bulk/V1/configurable-products/bySku/child``
  (https://developer.adobe.com/commerce/webapi/rest/tutorials/bulk-configurable-product/define-config-product-options/).
  The answer (202) carries ``bulk_uuid`` and one ``request_items`` line per operation, its ``id`` the operation's
  position in the request; the bulk is then polled through ``GET /V1/bulk/{uuid}/status``
  (https://developer.adobe.com/commerce/webapi/rest/use-rest/operation-status-endpoints/) until no operation is
  open (4), with a bounded backoff. Each operation's status becomes one :class:`WriteResult` for its SKU: 1
  complete, 2 failed but retriable (``Disposition.RETRY``), 3 failed and 5 rejected (``DEAD_LETTER``, with
  Magento's ``result_message`` as the reason). Operations are matched by ``id``, never by list position.
* Media gallery entries with base64 content (https://developer.adobe.com/commerce/webapi/rest/tutorials/image/new/),
  changed in place (``PUT /V1/products/{sku}/media/{entryId}``: label, position, roles) and removed with
  ``DELETE /V1/products/{sku}/media/{entryId}`` (``DeleteV1ProductsSkuMediaEntryId``),
  store views and their locales (``/V1/store/storeViews``, ``/V1/store/storeConfigs``), Inventory source items
  (https://developer.adobe.com/commerce/webapi/rest/inventory/manage-source-items/): one bad item makes Magento
  refuse the whole request ("Validation Failed"), so a refused batch is sent again item by item and only the bad
  ones are dead-lettered.

Magento answers a record's validation failure with 400 (it has no 422): on the routes that write one record
(a store view's values, a media entry) the 400's message is that record's dead-letter reason; elsewhere a 400 stays
a configuration failure, per ``http.CLASSIFICATION``. When the channel keeps failing transiently (5xx, timeouts)
past the retry budget, the client raises :class:`ChannelUnavailable`, a ``TransientError`` naming the channel.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from catalog_sync.connectors.adobe_mapping import (
    SYSTEM,
    ChannelRefusal,
    MagentoCatalog,
    canonical_to_magento_product,
)
from catalog_sync.connectors.base import Outcome, Page, WriteResult
from catalog_sync.connectors.credentials import AdobeCommerceCredentials, coerce
from catalog_sync.connectors.http import (
    AuthError,
    ClientOptions,
    ConfigurationError,
    Disposition,
    HttpClient,
    HttpResult,
    MalformedResponse,
    RecordError,
    TransientError,
    path_segment,
)

#: Operation statuses of a bulk (Magento\AsynchronousOperations\Api\Data\OperationInterface).
COMPLETE: Final = 1
RETRIABLY_FAILED: Final = 2
NOT_RETRIABLY_FAILED: Final = 3
OPEN: Final = 4
REJECTED: Final = 5
#: Admin scope: base values of products, never a store view's.
ADMIN: Final = "all"
#: Magento's answer when a child is linked a second time: the link is there, so the write is a no-op.
ALREADY_ATTACHED: Final = "The product is already attached."


class ChannelUnavailable(TransientError):
    """The channel kept failing transiently (5xx, timeouts, dropped connections) until the attempts ran out: the
    whole channel is down for now. Retry later; another channel is not held back by it."""


class BulkStillOpen(TransientError):
    """A bulk still had open operations when polling gave up; ``partial_results`` holds the finished ones."""


class BearerTokenAuth:
    """An Adobe Commerce integration access token in ``Authorization: Bearer``; it cannot be renewed."""

    def __init__(self, token: str) -> None:
        if not token:
            raise AuthError(f"{SYSTEM}: no integration access token configured")
        self._token = token

    def __repr__(self) -> str:
        return "BearerTokenAuth(token=***)"

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self._token,)

    def apply(self, client: HttpClient, headers: dict[str, str]) -> None:
        headers["Authorization"] = f"Bearer {self._token}"

    def on_unauthorized(self, client: HttpClient, result: HttpResult, sent: Mapping[str, str]) -> bool:
        return False


@dataclass(frozen=True)
class PollPolicy:
    """How a bulk is polled: the first wait, doubling up to ``cap``, giving up after ``timeout`` seconds."""

    first: float = 0.5
    cap: float = 10.0
    timeout: float = 900.0


@dataclass
class BulkSubmission:
    """One accepted bulk request: its uuid and, per operation id, the record key and the payload sent."""

    bulk_uuid: str
    keys: dict[int, str] = field(default_factory=dict)
    sent: dict[int, Any] = field(default_factory=dict)
    #: Magento's reason for each operation it rejected at the door (``request_items`` status ``rejected``)
    rejected: dict[int, str] = field(default_factory=dict)


def _message(body: Any) -> str:
    """Magento's error message with its ``%name``/``%1`` placeholders filled in from ``parameters``."""
    if not isinstance(body, dict):
        return str(body)
    text = str(body.get("message") or "")
    params = body.get("parameters")
    if isinstance(params, dict):
        for name, value in params.items():
            text = text.replace(f"%{name}", str(value))
    elif isinstance(params, list):
        for i, value in enumerate(params, 1):
            text = text.replace(f"%{i}", str(value))
    errors = body.get("errors")
    if isinstance(errors, list) and errors:
        text += ": " + "; ".join(_message(e) for e in errors)
    return text


def _bulk_answer(result: HttpResult) -> None:
    body = result.body
    if not isinstance(body, dict) or not isinstance(body.get("bulk_uuid"), str) \
            or not isinstance(body.get("request_items"), list):
        raise MalformedResponse("a bulk answer without bulk_uuid and request_items")


def _list_answer(result: HttpResult) -> None:
    if not isinstance(result.body, dict) or not isinstance(result.body.get("items"), list):
        raise MalformedResponse("a product list without items")


def _status_answer(result: HttpResult) -> None:
    body = result.body
    if not isinstance(body, dict) or not isinstance(body.get("operations_list"), list):
        raise MalformedResponse("a bulk status without operations_list")


def _price_answer(result: HttpResult) -> None:
    body = result.body
    if not isinstance(body, list) or not all(isinstance(e, dict) and "message" in e for e in body):
        raise MalformedResponse("a base-prices answer that is not a list of price update results")


def _price_error(error: Mapping[str, Any]) -> str:
    """A price update result's message with its placeholders filled in order from its ``parameters`` list."""
    text = str(error.get("message") or "refused")
    for value in error.get("parameters") or []:
        start = text.find("%")
        if start < 0:
            break
        end = start + 1
        while end < len(text) and (text[end].isalnum() or text[end] == "_"):
            end += 1
        text = text[:start] + str(value) + text[end:]
    return text


class AdobeCommerceClient(HttpClient):
    """Adobe Commerce admin REST client. ``base_url`` is the store's root (``https://shop.example.com``; the
    sandbox's ``http://127.0.0.1:8765/adobe_commerce``); every path starts with ``rest/``."""

    system = SYSTEM

    def __init__(self, base_url: str, credentials: AdobeCommerceCredentials | Mapping[str, Any] | str,
                 options: ClientOptions | None = None, *, poll: PollPolicy | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        creds = coerce(AdobeCommerceCredentials, credentials)
        super().__init__(base_url, BearerTokenAuth(creds.access_token), options, sleep=sleep)
        self.poll = poll or PollPolicy()

    def request(self, method: str, path: str, **kwargs: Any) -> HttpResult:
        try:
            return super().request(method, path, **kwargs)
        except ChannelUnavailable:
            raise
        except TransientError as exc:
            raise ChannelUnavailable(f"{SYSTEM}: the channel is unavailable: {exc}", system=exc.system,
                                     method=exc.method, path=exc.path, status=exc.status,
                                     attempts=exc.attempts) from None

    # ------------------------------------------------------------------------------------------ the channel's data
    def store_views(self) -> list[dict[str, Any]]:
        """``GET /V1/store/storeViews``: every store view, the admin store (id 0) included."""
        body = self.request("GET", f"rest/{ADMIN}/V1/store/storeViews").body
        if not isinstance(body, list):
            raise ConfigurationError(f"{SYSTEM}: store views answer is not a list")
        return body

    def store_locales(self) -> dict[str, str]:
        """Store view code -> its locale (``GET /V1/store/storeConfigs``), the admin store left out."""
        body = self.request("GET", f"rest/{ADMIN}/V1/store/storeConfigs").body or []
        return {str(c["code"]): str(c["locale"]) for c in body if c.get("id") and c.get("code") != "admin"}

    def attribute(self, attribute_code: str) -> tuple[int, dict[str, int]]:
        """A select attribute's id and its options, label -> option id (``GET /V1/products/attributes/{code}``;
        Magento lists an empty option first, which is skipped)."""
        body = self.request("GET", f"rest/{ADMIN}/V1/products/attributes/{path_segment(attribute_code)}").body
        if not isinstance(body, dict) or "attribute_id" not in body:
            raise ConfigurationError(f"{SYSTEM}: attribute {attribute_code!r} answered without an attribute_id")
        options = {str(o["label"]): int(o["value"]) for o in body.get("options") or []
                   if str(o.get("value") or "").strip()}
        return int(body["attribute_id"]), options

    def catalog(self, attribute_codes: Iterable[str] = ("color", "size"),
                source_of_location: Mapping[str, str] | None = None, *, attribute_set_id: int = 4,
                website_ids: Sequence[int] = (1,)) -> MagentoCatalog:
        """The identifiers the mapping needs, read from the channel: the id and options of each configurable
        attribute, and the store view of each locale (the first store view of a locale wins)."""
        locales: dict[str, str] = {}
        for store, locale in self.store_locales().items():
            locales.setdefault(locale, store)
        ids: dict[str, int] = {}
        options: dict[str, dict[str, int]] = {}
        for code in attribute_codes:
            ids[code], options[code] = self.attribute(code)
        return MagentoCatalog(attribute_set_id=attribute_set_id, website_ids=tuple(website_ids), attribute_ids=ids,
                              option_ids=options, store_of_locale=locales,
                              source_of_location=dict(source_of_location or {}))

    def get_product(self, sku: str, store: str = ADMIN) -> dict[str, Any] | None:
        result = self.request("GET", f"rest/{path_segment(store)}/V1/products/{path_segment(sku)}",
                              expect=(200, 404))
        return result.body if result.status == 200 else None

    def iter_products(self, page_size: int = 100) -> Iterator[Page]:
        """Every product at admin scope, ``GET /V1/products`` a page at a time (``searchCriteria`` paging, sorted
        by ``entity_id``). Magento answers a page past the last with the last page again, so the read stops by
        ``total_count``."""
        current, seen = 1, 0
        while True:
            params = {"searchCriteria[pageSize]": page_size, "searchCriteria[currentPage]": current,
                      "searchCriteria[sortOrders][0][field]": "entity_id",
                      "searchCriteria[sortOrders][0][direction]": "ASC"}
            body = self.request("GET", f"rest/{ADMIN}/V1/products", params=params, validate=_list_answer).body
            items, total = body["items"], int(body.get("total_count") or 0)
            seen += len(items)
            done = seen >= total or not items
            yield Page("products", items, [], None if done else current + 1)
            if done:
                return
            current += 1

    # ---------------------------------------------------------------------------------------------- bulk writes
    def _submit(self, path: str, operations: Sequence[tuple[str, Any]], method: str = "POST") -> BulkSubmission:
        if not operations:
            raise ConfigurationError(f"{SYSTEM}: an empty bulk request")
        result = self.request(method, path, json_body=[body for _, body in operations], expect=(202, 200),
                              validate=_bulk_answer)
        submission = BulkSubmission(result.body["bulk_uuid"])
        for position, (key, body) in enumerate(operations):
            submission.keys[position] = key
            submission.sent[position] = body
        for item in result.body["request_items"]:
            if item.get("status") == "rejected":
                submission.rejected[int(item["id"])] = str(item.get("error_message") or "rejected")
        return submission

    def submit_products(self, products: Sequence[Mapping[str, Any]]) -> BulkSubmission:
        """Queue one save per product (admin scope) in one bulk; returns its uuid and which operation is which SKU.
        Order matters to the consumer, which runs operations by id: send variants before their parent."""
        return self._submit(f"rest/{ADMIN}/async/bulk/V1/products",
                            [(str(p["sku"]), {"product": dict(p)}) for p in products])

    def submit_children(self, links: Sequence[tuple[str, str]]) -> BulkSubmission:
        """Queue ``(parent SKU, child SKU)`` links to configurable products; keys are ``parent/child``."""
        return self._submit(f"rest/{ADMIN}/async/bulk/V1/configurable-products/bySku/child",
                            [(f"{parent}/{child}", {"sku": parent, "childSku": child}) for parent, child in links])

    def submit_store_values(self, store: str, values: Sequence[tuple[str, Mapping[str, Any]]]) -> BulkSubmission:
        """Queue a store view's own values for many SKUs (``PUT /rest/<store>/async/bulk/V1/products/bySku``, each
        item ``{"sku", "product"}``); keys are ``sku@store``."""
        if store in (ADMIN, "admin"):
            raise ConfigurationError(f"{SYSTEM}: store view values go to a store view, not the admin scope")
        return self._submit(f"rest/{path_segment(store)}/async/bulk/V1/products/bySku",
                            [(f"{sku}@{store}", {"sku": sku, "product": {**product, "sku": sku}})
                             for sku, product in values], method="PUT")

    def upsert_store_values(self, store: str, values: Sequence[tuple[str, Mapping[str, Any]]]) -> list[WriteResult]:
        """A store view's values for many SKUs through one bulk, waited for: one result per ``sku@store``."""
        return self.wait_for_bulk(self.submit_store_values(store, values))

    def bulk_status(self, bulk_uuid: str) -> dict[str, Any]:
        body: dict[str, Any] = self.request("GET", f"rest/{ADMIN}/V1/bulk/{path_segment(bulk_uuid)}/status",
                                            validate=_status_answer).body
        return body

    def wait_for_bulk(self, submission: BulkSubmission) -> list[WriteResult]:
        """Poll the bulk until no operation is open; one :class:`WriteResult` per operation, in request order.

        Raises :class:`BulkStillOpen` (transient, with the finished operations' results) when the poll policy's
        timeout passes first.
        """
        waited = 0.0
        wait = self.poll.first
        while True:
            status = self.bulk_status(submission.bulk_uuid)
            by_id = {int(op["id"]): op for op in status["operations_list"]}
            open_ids = [i for i in submission.keys if by_id.get(i, {}).get("status", OPEN) == OPEN
                        and i not in submission.rejected]
            if not open_ids:
                return [self._result(submission, i, by_id.get(i)) for i in sorted(submission.keys)]
            if waited >= self.poll.timeout:
                error = BulkStillOpen(f"{SYSTEM}: bulk {submission.bulk_uuid} still has {len(open_ids)} open "
                                      f"operation(s) after {waited:.0f}s", system=SYSTEM)
                error.partial_results = [self._result(submission, i, by_id.get(i)) for i in sorted(submission.keys)
                                         if i not in open_ids]
                raise error
            step = min(wait, self.poll.cap, max(self.poll.timeout - waited, 0.0))
            self._sleep(step)
            waited += step
            wait = min(wait * 2, self.poll.cap)

    @staticmethod
    def _result(submission: BulkSubmission, op_id: int, op: Mapping[str, Any] | None) -> WriteResult:
        key, sent = submission.keys[op_id], submission.sent[op_id]
        if op_id in submission.rejected and (op is None or op.get("status") in (None, REJECTED)):
            return WriteResult(key, Outcome.FAILED, REJECTED, submission.rejected[op_id], sent,
                               Disposition.DEAD_LETTER, op)
        if op is None:
            return WriteResult(key, Outcome.FAILED, None, f"bulk {submission.bulk_uuid} lists no operation {op_id}",
                               sent, Disposition.RETRY)
        status, message = int(op["status"]), str(op.get("result_message") or "")
        if status == COMPLETE:
            return WriteResult(key, Outcome.OK, status, message, sent, None, op)
        if message == ALREADY_ATTACHED:
            return WriteResult(key, Outcome.UNCHANGED, status, message, sent, None, op)
        disposition = Disposition.RETRY if status == RETRIABLY_FAILED else Disposition.DEAD_LETTER
        return WriteResult(key, Outcome.FAILED, status, message or f"bulk operation status {status}", sent,
                           disposition, op)

    def upsert_products(self, products: Sequence[Mapping[str, Any]]) -> list[WriteResult]:
        """Save products through one bulk and wait for it: one result per SKU."""
        return self.wait_for_bulk(self.submit_products(products))

    def link_children(self, links: Sequence[tuple[str, str]]) -> list[WriteResult]:
        """Link children through one bulk and wait for it; a link already there is UNCHANGED."""
        return self.wait_for_bulk(self.submit_children(links))

    def publish(self, records: Sequence[Mapping[str, Any]], catalog: MagentoCatalog) -> list[WriteResult]:
        """Canonical records to the channel: map each (refusals dead-lettered), save every product in one bulk
        (variants before parents), then link each saved variant to its saved parent in a second bulk. One result
        per SKU (a variant's result is its link's when the link failed)."""
        variants_of: dict[str, list[Mapping[str, Any]]] = {}
        for record in records:
            if record.get("parent_sku"):
                variants_of.setdefault(str(record["parent_sku"]), []).append(record)
        results: dict[str, WriteResult] = {}
        payloads: list[dict[str, Any]] = []
        ordered = sorted(records, key=lambda r: 0 if r.get("parent_sku") else 1)
        for record in ordered:
            sku = str(record["sku"])
            try:
                payloads.append(canonical_to_magento_product(record, catalog, variants_of.get(sku, ())))
            except ChannelRefusal as exc:
                results[sku] = WriteResult.failure(sku, exc, record)
        if payloads:
            for result in self.upsert_products(payloads):
                results[result.key] = result
        links: list[tuple[str, str]] = []
        for record in ordered:
            parent, child = str(record.get("parent_sku") or ""), str(record["sku"])
            if not parent or child not in results or not results[child].ok:
                continue
            saved = results.get(parent)
            if saved is not None and saved.ok:
                links.append((parent, child))
            else:
                # saved but orphaned (not visible individually, in no configurable): failed until its parent is in
                reason = saved.message if saved is not None else "not among the records published"
                results[child] = WriteResult(child, Outcome.FAILED, None, f"its parent {parent} was not saved: "
                                             f"{reason}", results[child].sent,
                                             saved.disposition if saved is not None else Disposition.DEAD_LETTER)
        if links:
            for link in self.link_children(links):
                child = link.key.split("/", 1)[1]
                if not link.ok:
                    results[child] = WriteResult(child, Outcome.FAILED, link.status,
                                                 f"not linked to its parent: {link.message}", link.sent,
                                                 link.disposition, link.response)
        return [results[str(r["sku"])] for r in records if str(r["sku"]) in results]

    # ------------------------------------------------------------------------------------- single-record writes
    def _record_write(self, key: str, method: str, path: str, body: Any) -> HttpResult | WriteResult:
        result = self.request(method, path, json_body=body, expect=(200, 400, 404), record_key=key)
        if result.status != 200:
            return WriteResult(key, Outcome.FAILED, result.status, _message(result.body), body,
                               Disposition.DEAD_LETTER, result.body)
        return result

    def update_store_values(self, store: str, sku: str, product: Mapping[str, Any]) -> WriteResult:
        """A store view's own values (its locale's name and texts): ``PUT /rest/<store>/V1/products/{sku}``."""
        if store in (ADMIN, "admin"):
            raise ConfigurationError(f"{SYSTEM}: store view values go to a store view, not the admin scope")
        key = f"{sku}@{store}"
        body = {"product": {**product, "sku": sku}}
        result = self._record_write(key, "PUT", f"rest/{path_segment(store)}/V1/products/{path_segment(sku)}", body)
        if isinstance(result, WriteResult):
            return result
        return WriteResult(key, Outcome.OK, result.status, None, body, None, result.body)

    def media(self, sku: str) -> list[dict[str, Any]]:
        """``GET /V1/products/{sku}/media``: the SKU's gallery entries. A SKU the channel does not hold (404) is that
        record's problem: :class:`RecordError`."""
        result = self.request("GET", f"rest/{ADMIN}/V1/products/{path_segment(sku)}/media", expect=(200, 404))
        if result.status == 404:
            raise RecordError(sku, f"{SYSTEM}: {_message(result.body)}", system=SYSTEM, status=404)
        return list(result.body or [])

    def add_media(self, sku: str, entry: Mapping[str, Any], *, listed: Sequence[Mapping[str, Any]] | None = None
                  ) -> WriteResult:
        """One gallery entry (``POST /V1/products/{sku}/media``); an entry with the same label and file name is
        already there (Magento keeps the name as the file's last path segment) and is left UNCHANGED. ``listed``:
        the SKU's entries as the caller just read them (``media``), saving the read."""
        name = str((entry.get("content") or {}).get("name") or "")
        if listed is None:
            answer = self.request("GET", f"rest/{ADMIN}/V1/products/{path_segment(sku)}/media", expect=(200, 404))
            listed = answer.body if answer.status == 200 and isinstance(answer.body, list) else []
        for existing in listed:
            if existing.get("label") == entry.get("label") and str(existing.get("file", "")).endswith("/" + name):
                return WriteResult(sku, Outcome.UNCHANGED, 200, f"gallery entry {existing.get('id')} already there",
                                   None, None, existing)
        body = {"entry": dict(entry)}
        result = self._record_write(sku, "POST", f"rest/{ADMIN}/V1/products/{path_segment(sku)}/media", body)
        sent = {"entry": {**entry, "content": {**(entry.get("content") or {}), "base64_encoded_data": "<image>"}}}
        if isinstance(result, WriteResult):
            return dataclasses.replace(result, sent=sent)
        return WriteResult(sku, Outcome.OK, result.status, f"gallery entry {result.body}", sent, None, result.body)

    def update_media(self, sku: str, entry_id: int | str, entry: Mapping[str, Any]) -> WriteResult:
        """Change a gallery entry's label, position, disabled flag or roles without sending its file again
        (``PUT /V1/products/{sku}/media/{entryId}``, the entry's ``id`` in the body too, answered ``true``); an
        entry that is not there (404) is a failure of that record. Key ``sku/entryId``."""
        key = f"{sku}/{entry_id}"
        body = {"entry": {**{k: v for k, v in entry.items() if k != "content"}, "id": int(entry_id)}}
        result = self._record_write(key, "PUT", f"rest/{ADMIN}/V1/products/{path_segment(sku)}/media/"
                                    f"{path_segment(str(entry_id))}", body)
        if isinstance(result, WriteResult):
            return result
        return WriteResult(key, Outcome.OK, result.status, None, body, None, result.body)

    def delete_media(self, sku: str, entry_id: int | str) -> WriteResult:
        """Remove one gallery entry (``DELETE /V1/products/{sku}/media/{entryId}``, answered ``true``). Magento
        answers 404 (``NoSuchEntityException``) when the entry, or the product, is not there: nothing is left to
        remove, so a repeated delete is UNCHANGED. Key ``sku/entryId``."""
        key = f"{sku}/{entry_id}"
        result = self.request("DELETE", f"rest/{ADMIN}/V1/products/{path_segment(sku)}/media/"
                              f"{path_segment(str(entry_id))}", expect=(200, 400, 404), record_key=key)
        if result.status == 404:
            return WriteResult(key, Outcome.UNCHANGED, 404, _message(result.body), None, None, result.body)
        if result.status != 200 or result.body is not True:
            return WriteResult(key, Outcome.FAILED, result.status, _message(result.body) or "not removed", None,
                               Disposition.DEAD_LETTER, result.body)
        return WriteResult(key, Outcome.OK, 200, None, None, None, True)

    # ------------------------------------------------------------------------------------- live prices and status
    def save_base_prices(self, prices: Sequence[Mapping[str, Any]]) -> list[WriteResult]:
        """Upsert base prices (``POST /V1/products/base-prices``; items ``sku``, ``price``, ``store_id``), one
        result per SKU.

        Magento saves the valid items and answers 200 with a list of the failed ones (empty when all were saved):
        each a ``message`` with ``%name`` placeholders and its ``parameters`` as a list of strings, in placeholder
        order, and no row number (magento/magento2 ``BasePriceStorageTest::testUpdateWithInvalidParameters``). A
        failure is matched to a SKU by the SKU among its parameters; one naming no SKU of the request (a negative
        price names only the price) sends each item of that request again alone, so every refusal gets its SKU.
        """
        size = self.options.batch_size or 500
        out: list[WriteResult] = []
        for start in range(0, len(prices), size):
            out.extend(self._price_batch(prices[start:start + size]))
        return out

    def _price_batch(self, batch: Sequence[Mapping[str, Any]]) -> list[WriteResult]:
        result = self.request("POST", f"rest/{ADMIN}/V1/products/base-prices",
                              json_body={"prices": [dict(p) for p in batch]}, validate=_price_answer)
        failed: dict[str, list[str]] = {}
        skus = {str(p.get("sku")) for p in batch}
        for error in result.body:
            params = [str(v) for v in error.get("parameters") or []]
            named = [v for v in params if v in skus]
            if not named:
                if len(batch) == 1:
                    named = [str(batch[0].get("sku"))]
                else:  # which item it is only a request of that item alone can say
                    return [r for item in batch for r in self._price_batch([item])]
            failed.setdefault(named[0], []).append(_price_error(error))
        return [WriteResult(str(p.get("sku")), Outcome.OK, 200, None, dict(p)) if str(p.get("sku")) not in failed
                else WriteResult(str(p.get("sku")), Outcome.FAILED, 200, "; ".join(failed[str(p.get("sku"))]),
                                 dict(p), Disposition.DEAD_LETTER, result.body)
                for p in batch]

    def set_status(self, sku: str, status: int) -> WriteResult:
        """A product's status at the admin scope (``PUT /rest/all/V1/products/{sku}`` with only ``sku`` and
        ``status``: Magento's repository keeps every value the body leaves out of an existing product). A 400 or
        404 is the record's refusal."""
        body = {"product": {"sku": sku, "status": int(status)}}
        result = self._record_write(sku, "PUT", f"rest/{ADMIN}/V1/products/{path_segment(sku)}", body)
        if isinstance(result, WriteResult):
            return result
        return WriteResult(sku, Outcome.OK, result.status, None, body, None,
                           {"sku": sku, "status": (result.body or {}).get("status")})

    # ------------------------------------------------------------------------------------------- inventory (MSI)
    def save_source_items(self, items: Sequence[Mapping[str, Any]]) -> list[WriteResult]:
        """Upsert MSI source items (``sku``, ``source_code``, ``quantity``, ``status``); key ``sku/source_code``."""
        return self._source_items("rest/" + ADMIN + "/V1/inventory/source-items", items)

    def delete_source_items(self, items: Sequence[Mapping[str, Any]]) -> list[WriteResult]:
        """Unassign SKUs from sources (``source-items-delete``); it clears their quantity there."""
        return self._source_items("rest/" + ADMIN + "/V1/inventory/source-items-delete", items)

    def _source_items(self, path: str, items: Sequence[Mapping[str, Any]]) -> list[WriteResult]:
        size = self.options.batch_size or 500
        out: list[WriteResult] = []
        for start in range(0, len(items), size):
            out.extend(self._source_batch(path, items[start:start + size]))
        return out

    def _source_batch(self, path: str, batch: Sequence[Mapping[str, Any]]) -> list[WriteResult]:
        keys = [f"{i.get('sku')}/{i.get('source_code')}" for i in batch]
        result = self.request("POST", path, json_body={"sourceItems": [dict(i) for i in batch]}, expect=(200, 400))
        if result.status == 200:
            return [WriteResult(k, Outcome.OK, 200, None, dict(i)) for k, i in zip(keys, batch, strict=True)]
        if len(batch) == 1:
            return [WriteResult(keys[0], Outcome.FAILED, 400, _message(result.body), dict(batch[0]),
                                Disposition.DEAD_LETTER, result.body)]
        # one bad item refuses the whole request: find it by sending each item alone
        return [r for item in batch for r in self._source_batch(path, [item])]


def dead_letters(results: Iterable[WriteResult]) -> list[RecordError]:
    """The failed results a caller dead-letters (``DEAD_LETTER``), as :class:`RecordError` with Magento's reason."""
    return [RecordError(r.key, r.message or "refused", record=r.sent, system=SYSTEM, status=r.status)
            for r in results if not r.ok and r.disposition is Disposition.DEAD_LETTER]

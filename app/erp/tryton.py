"""Tryton 8 over JSON-RPC: master data in, approved supplier invoices out (DESIGN §8).

One `httpx.Client` and one Tryton session per adapter: logging in hashes the password
(0.2 to 0.5 s), so the session is reused until Tryton answers 401, then renewed once.

Idempotency: the outbox key is stored in the supplier invoice's `description` field as
`tollgate:<key>` (visible in the Tryton client, searchable with `=`); the supplier's invoice
number goes to `reference`. `find_posted` and `list_posted` search on that marker.

Line numbers: a PO line's `line_no` in Tollgate is its 1-based position among the PO's
`line`-type lines, ordered as Tryton orders them (sequence, then id), the number a supplier
sees on the printed order. `post_invoice` maps `po_line_ref` back the same way.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

import httpx

from app.erp.protocol import (
    ErpRejected,
    ErpUnavailable,
    PostedDocument,
    PostingRequest,
    SupplierData,
)
from app.settings import Settings
from pipelines.canonical import (
    CreditNote,
    DocumentLine,
    GoodsReceipt,
    GoodsReceiptLine,
    Invoice,
    LineKind,
    PurchaseOrder,
    PurchaseOrderLine,
)

KEY_PREFIX = "tollgate:"
MESSAGE_LIMIT = 1000
OPEN_PO_STATES = ("confirmed", "processing")
POSTED_STATES = ("posted", "paid")
# Tryton's units carry a symbol, not a UN/ECE Rec 20 code (that needs the edocument_unece
# module); these are the symbols of the units Tryton ships.
UNIT_CODES = {
    "u": "C62",
    "kg": "KGM",
    "g": "GRM",
    "t": "TNE",
    "m": "MTR",
    "cm": "CMT",
    "mm": "MMT",
    "km": "KMT",
    "l": "LTR",
    "m³": "MTQ",
    "m²": "MTK",
    "h": "HUR",
    "min": "MIN",
    "d": "DAY",
}
PO_STATUS = {"confirmed": "open", "processing": "open", "done": "closed", "cancelled": "cancelled"}


def _decode(obj: dict[str, Any]) -> Any:
    """Tryton's JSON extension: typed values travel as {'__class__': ...} objects."""
    kind = obj.get("__class__")
    if kind == "Decimal":
        return Decimal(obj["decimal"])
    if kind == "date":
        return date(obj["year"], obj["month"], obj["day"])
    if kind == "datetime":
        # Tryton sends naive UTC timestamps; make them aware so comparisons are unambiguous.
        return datetime(
            obj["year"],
            obj["month"],
            obj["day"],
            obj["hour"],
            obj["minute"],
            obj["second"],
            obj["microsecond"],
            tzinfo=UTC,
        )
    if kind == "bytes":
        return base64.b64decode(obj["base64"])
    return obj


def _encode(value: Any) -> Any:
    if isinstance(value, Decimal):
        return {"__class__": "Decimal", "decimal": str(value)}
    if isinstance(value, datetime):
        # Tryton stores naive UTC timestamps.
        naive = value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
        return {
            "__class__": "datetime",
            "year": naive.year,
            "month": naive.month,
            "day": naive.day,
            "hour": naive.hour,
            "minute": naive.minute,
            "second": naive.second,
            "microsecond": naive.microsecond,
        }
    if isinstance(value, date):
        return {"__class__": "date", "year": value.year, "month": value.month, "day": value.day}
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"cannot send {type(value).__name__} to Tryton")


def _short(text: str) -> str:
    # Tryton's validation errors embed whole records and domains (≈ 60 KB): keep the head.
    return text if len(text) <= MESSAGE_LIMIT else text[:MESSAGE_LIMIT] + " …[truncated]"


def _user_message(error: Any) -> str:
    """The readable part of a Tryton error payload: (kind, (message, description, ...))."""
    if isinstance(error, list) and len(error) == 2 and isinstance(error[1], list):
        kind, args = error
        if kind == "UserWarning" and len(args) >= 2:
            parts = [str(a) for a in args[1:] if a]
        else:
            parts = [str(a) for a in args[:2] if a]
        return _short(f"{kind}: " + " - ".join(parts))
    if isinstance(error, list) and error:
        return _short(str(error[0]))
    return _short(str(error))


def _unit_code(symbol: str | None) -> str:
    if not symbol:
        return "C62"
    return UNIT_CODES.get(symbol, symbol.upper()[:8])


def _since_domain(since: datetime | None) -> list[Any]:
    if since is None:
        return []
    # Records never written since creation have no write_date.
    return [["OR", ("write_date", ">=", since), ("create_date", ">=", since)]]


def _ordered_lines(lines: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    # Tryton orders lines by sequence (unset first), then id; only `line` rows are numbered.
    rows = [line for line in lines if line.get("type", "line") == "line"]
    return sorted(
        rows, key=lambda r: (r.get("sequence") is not None, r.get("sequence") or 0, r["id"])
    )


def _rel(row: dict[str, Any], name: str, field: str) -> Any:
    """A dotted read result: Tryton returns `name.` as a nested dict (or None)."""
    nested = row.get(f"{name}.")
    return nested.get(field) if isinstance(nested, dict) else None


class TrytonAdapter:
    """An ErpAdapter for Tryton 8 over JSON-RPC (`/<database>/rpc/`)."""

    name = "tryton"

    def __init__(
        self,
        url: str,
        database: str,
        user: str,
        password: str,
        timeout: float = 30.0,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.database = database
        self.user = user
        self._password = password
        self._client = httpx.Client(
            base_url=self.url, timeout=timeout, transport=transport, trust_env=False
        )
        self._auth: str | None = None
        self._context: dict[str, Any] = {}
        self._request_id = 0
        self.calls = 0  # RPC calls made, for the bench and tests

    # --- transport ----------------------------------------------------------------------

    def close(self) -> None:
        """Log out (best effort) and close the HTTP connection pool."""
        if self._auth is not None:
            # Best effort: the session expires on its own.
            with contextlib.suppress(ErpUnavailable, ErpRejected, _SessionExpired):
                self._post("common.db.logout", [], auth=self._auth)
            self._auth = None
        self._client.close()

    def __enter__(self) -> TrytonAdapter:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _post(self, method: str, params: list[Any], auth: str | None, *, path: str = "") -> Any:
        self._request_id += 1
        self.calls += 1
        body = json.dumps(
            {"id": self._request_id, "method": method, "params": params}, default=_encode
        )
        headers = {"Content-Type": "application/json"}
        if auth is not None:
            headers["Authorization"] = f"Session {auth}"
        try:
            response = self._client.post(
                path or f"/{self.database}/rpc/", content=body, headers=headers
            )
        except httpx.TimeoutException as exc:
            raise ErpUnavailable(f"Tryton timed out on {method}: {exc}") from exc
        except httpx.HTTPError as exc:
            raise ErpUnavailable(f"Tryton unreachable at {self.url}: {exc}") from exc
        if response.status_code == 401:
            raise _SessionExpired()
        if response.status_code >= 500 or response.status_code in (403, 404, 429):
            # 403 on login: bad credentials; 404: no such database. Neither is the document's
            # fault, so the posting waits for an operator instead of dead-lettering.
            raise ErpUnavailable(
                f"Tryton answered HTTP {response.status_code} on {method}: " + _short(response.text)
            )
        if response.status_code >= 400:
            raise ErpRejected(
                f"Tryton answered HTTP {response.status_code} on {method}: " + _short(response.text)
            )
        try:
            payload = json.loads(response.text, object_hook=_decode)
        except ValueError as exc:
            raise ErpUnavailable(f"Tryton sent invalid JSON on {method}") from exc
        if payload.get("error") is not None:
            error = payload["error"]
            kind = error[0] if isinstance(error, list) and error else None
            if kind in ("UserError", "UserWarning", "AccessError"):
                raise ErpRejected(_user_message(error))
            # ConcurrencyException, database locks and server faults: worth a retry.
            raise ErpUnavailable(f"Tryton failed on {method}: {_user_message(error)}")
        return payload.get("result")

    def login(self) -> None:
        """Open a session and load the user's context (company, language)."""
        try:
            result = self._post(
                "common.db.login", [self.user, {"password": self._password}, "en"], auth=None
            )
        except _SessionExpired as exc:
            raise ErpUnavailable(f"Tryton refused the login of {self.user!r}") from exc
        user_id, token = result[0], result[1]
        self._auth = base64.b64encode(f"{self.user}:{user_id}:{token}".encode()).decode()
        self._context = self._post("model.res.user.get_preferences", [True, {}], self._auth)

    def rpc(self, method: str, *args: Any) -> Any:
        """Call a Tryton RPC method with the session context appended; re-login once on 401."""
        for attempt in (1, 2):
            if self._auth is None:
                self.login()
            assert self._auth is not None
            try:
                return self._post(method, [*args, self._context], self._auth)
            except _SessionExpired:
                self._auth = None
                if attempt == 2:
                    raise ErpUnavailable(f"Tryton session rejected on {method}") from None
        raise AssertionError("unreachable")

    def call(self, model: str, method: str, *args: Any) -> Any:
        """Call `method` of a Tryton model."""
        return self.rpc(f"model.{model}.{method}", *args)

    def search_read(
        self,
        model: str,
        domain: Sequence[Any],
        fields: Sequence[str],
        *,
        order: Sequence[tuple[str, str]] | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Records of a model matching a domain, as dicts of the named fields."""
        result: list[dict[str, Any]] = self.call(
            model, "search_read", list(domain), 0, limit, order, list(fields)
        )
        return result

    def read(self, model: str, ids: Sequence[int], fields: Sequence[str]) -> list[dict[str, Any]]:
        """Records by id."""
        if not ids:
            return []
        result: list[dict[str, Any]] = self.call(model, "read", list(ids), list(fields))
        return result

    # --- ErpAdapter ---------------------------------------------------------------------

    def check(self) -> str:
        """Log in and say which Tryton and company this is (raises ErpUnavailable)."""
        if self._auth is None:
            self.login()
        # The server-wide methods live at /rpc/, outside any database.
        version = self._post("common.server.version", [], auth=None, path="/rpc/")
        company = self._context.get("company")
        company_name = None
        if company:
            rows = self.read("company.company", [company], ["rec_name"])
            company_name = rows[0]["rec_name"] if rows else None
        return f"Tryton {version} at {self.url}, database {self.database}, company {company_name}"

    def _module_active(self, name: str) -> bool:
        rows = self.search_read(
            "ir.module", [("name", "=", name), ("state", "=", "activated")], ["id"]
        )
        return bool(rows)

    def fetch_suppliers(self) -> list[SupplierData]:
        """Parties Tollgate must know as suppliers: those on purchases or product supplier lists.

        Tryton has no supplier flag on parties; a party is a supplier when something is bought
        from it. Inactive parties come back as blocked.
        """
        party_ids: set[int] = set()
        for row in self.search_read("purchase.purchase", [], ["party"]):
            party_ids.add(row["party"])
        for row in self.search_read("purchase.product_supplier", [], ["party"]):
            party_ids.add(row["party"])
        if not party_ids:
            return []
        parties = self.search_read(
            "party.party",
            [("id", "in", sorted(party_ids)), ("active", "in", [True, False])],
            ["code", "name", "active"],
        )
        vat: dict[int, str] = {}
        for ident in self.search_read(
            "party.identifier",
            [("party", "in", sorted(party_ids))],
            ["party", "type", "code"],
            order=[("sequence", "ASC"), ("id", "ASC")],
        ):
            # eu_vat and the national *_vat types are tax identifiers; the first one wins, as
            # in Tryton's own `tax_identifier`.
            if ident["type"] and "vat" in ident["type"] and ident["party"] not in vat:
                vat[ident["party"]] = ident["code"]
        ibans: dict[int, list[str]] = defaultdict(list)
        if self._module_active("bank"):
            accounts = self.search_read(
                "bank.account", [("owners", "in", sorted(party_ids))], ["owners", "numbers"]
            )
            number_ids = [n for acc in accounts for n in acc["numbers"]]
            numbers = {
                row["id"]: row
                for row in self.read("bank.account.number", number_ids, ["type", "number_compact"])
            }
            for acc in accounts:
                for number_id in acc["numbers"]:
                    number = numbers.get(number_id)
                    if number and number["type"] == "iban":
                        for owner in acc["owners"]:
                            if owner in party_ids:
                                ibans[owner].append(number["number_compact"])
        return [
            SupplierData(
                ref=party["code"],
                name=party["name"],
                vat_id=vat.get(party["id"]),
                ibans=tuple(ibans.get(party["id"], ())),
                blocked=not party["active"],
            )
            for party in sorted(parties, key=lambda p: p["code"])
        ]

    def _purchase_lines(self, purchase_ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
        """Each purchase's `line` rows in Tryton's order, with product, unit and taxes."""
        rows = self.search_read(
            "purchase.line",
            [("purchase", "in", list(purchase_ids))],
            [
                "purchase",
                "sequence",
                "type",
                "product",
                "product.code",
                "product.type",
                "product.name",
                "description",
                "quantity",
                "unit",
                "unit.symbol",
                "unit_price",
                "taxes",
            ],
        )
        grouped: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            grouped[row["purchase"]].append(row)
        return {pid: _ordered_lines(lines) for pid, lines in grouped.items()}

    def _tax_rates(self, tax_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
        ids = sorted(set(tax_ids))
        return {row["id"]: row for row in self.read("account.tax", ids, ["type", "rate"])}

    def fetch_purchase_orders(self, since: datetime | None = None) -> list[PurchaseOrder]:
        """Open (confirmed/processing) POs; with a watermark also those closed/cancelled since."""
        states = list(OPEN_PO_STATES) + (["done", "cancelled"] if since is not None else [])
        purchases = self.search_read(
            "purchase.purchase",
            [("state", "in", states), *_since_domain(since)],
            [
                "number",
                "state",
                "purchase_date",
                "party.code",
                "currency.code",
                "company.rec_name",
            ],
            order=[("id", "ASC")],
        )
        lines = self._purchase_lines([p["id"] for p in purchases])
        taxes = self._tax_rates(t for ls in lines.values() for line in ls for t in line["taxes"])
        orders = []
        for purchase in purchases:
            po_lines = []
            for position, line in enumerate(lines.get(purchase["id"], []), start=1):
                rates = [
                    taxes[t]["rate"] * 100
                    for t in line["taxes"]
                    if t in taxes and taxes[t]["type"] == "percentage" and taxes[t]["rate"]
                ]
                service = _rel(line, "product", "type") == "service"
                po_lines.append(
                    PurchaseOrderLine(
                        line_no=str(position),
                        item_id=_rel(line, "product", "code"),
                        description=line["description"] or _rel(line, "product", "name"),
                        # Tryton quantities are floats; repr() round-trips them exactly enough.
                        quantity=Decimal(repr(line["quantity"])),
                        unit_code=_unit_code(_rel(line, "unit", "symbol")),
                        unit_price=line["unit_price"],
                        tax_rate=sum(rates, Decimal(0)).normalize() if rates else None,
                        kind=LineKind.SERVICE if service else LineKind.GOODS,
                        receipt_required=not service,
                    )
                )
            orders.append(
                PurchaseOrder(
                    number=purchase["number"],
                    supplier_ref=_rel(purchase, "party", "code"),
                    company=_rel(purchase, "company", "rec_name"),
                    order_date=purchase["purchase_date"],
                    currency=_rel(purchase, "currency", "code"),
                    status=PO_STATUS.get(purchase["state"], "open"),
                    lines=po_lines,
                )
            )
        return orders

    def _line_numbers(self, line_ids: Iterable[int]) -> dict[int, tuple[str, str]]:
        """purchase.line id -> (PO number, Tollgate line_no)."""
        ids = sorted(set(line_ids))
        if not ids:
            return {}
        purchase_ids = sorted(
            {row["purchase"] for row in self.read("purchase.line", ids, ["purchase"])}
        )
        numbers = {
            row["id"]: row["number"]
            for row in self.read("purchase.purchase", purchase_ids, ["number"])
        }
        result = {}
        for pid, lines in self._purchase_lines(purchase_ids).items():
            for position, line in enumerate(lines, start=1):
                result[line["id"]] = (numbers[pid], str(position))
        return result

    def fetch_receipts(self, since: datetime | None = None) -> list[GoodsReceipt]:
        """Done supplier shipments (and returns, negative), one receipt per shipment and PO."""
        receipts: list[GoodsReceipt] = []
        for model, sign, date_field in (
            ("stock.shipment.in", 1, "effective_date"),
            ("stock.shipment.in.return", -1, "effective_date"),
        ):
            shipments = self.search_read(
                model,
                [("state", "=", "done"), *_since_domain(since)],
                ["number", date_field],
                order=[("id", "ASC")],
            )
            if not shipments:
                continue
            moves = self.search_read(
                "stock.move",
                [
                    ("shipment", "in", [f"{model},{s['id']}" for s in shipments]),
                    ("state", "=", "done"),
                    ("origin", "like", "purchase.line,%"),
                ],
                ["shipment", "origin", "quantity", "unit.symbol"],
                order=[("id", "ASC")],
            )
            line_ids = [int(m["origin"].split(",")[1]) for m in moves]
            numbers = self._line_numbers(line_ids)
            by_shipment: dict[str, dict[str, list[GoodsReceiptLine]]] = defaultdict(
                lambda: defaultdict(list)
            )
            for move in moves:
                po_number, line_no = numbers[int(move["origin"].split(",")[1])]
                by_shipment[move["shipment"]][po_number].append(
                    GoodsReceiptLine(
                        po_line_no=line_no,
                        quantity=sign * Decimal(repr(move["quantity"])),
                        unit_code=_unit_code(_rel(move, "unit", "symbol")),
                    )
                )
            for shipment in shipments:
                per_po = by_shipment.get(f"{model},{shipment['id']}", {})
                for po_number, receipt_lines in sorted(per_po.items()):
                    # A shipment may carry several POs; Tollgate's receipts belong to one PO.
                    number = (
                        shipment["number"]
                        if len(per_po) == 1
                        else (f"{shipment['number']}/{po_number}")
                    )
                    receipts.append(
                        GoodsReceipt(
                            number=number if sign > 0 else f"R-{number}",
                            po_number=po_number,
                            receipt_date=shipment[date_field],
                            lines=receipt_lines,
                        )
                    )
        return receipts

    def _find_by_key(self, idempotency_key: str) -> list[dict[str, Any]]:
        return self.search_read(
            "account.invoice",
            [
                ("type", "=", "in"),
                ("description", "=", KEY_PREFIX + idempotency_key),
                ("state", "!=", "cancelled"),
            ],
            ["number", "state"],
            order=[("id", "ASC")],
        )

    def find_posted(self, idempotency_key: str) -> str | None:
        """The number of the posted supplier invoice carrying this key, or None."""
        for row in self._find_by_key(idempotency_key):
            if row["state"] in POSTED_STATES:
                number: str = row["number"]
                return number
        return None

    def post_invoice(self, request: PostingRequest) -> str:
        """Create, validate and post a supplier invoice linked to the PO lines; return its number.

        A draft left by an attempt that crashed before posting is adopted, not duplicated.
        """
        doc = request.document
        if not isinstance(doc, (Invoice, CreditNote)):
            raise ErpRejected(f"Tryton adapter posts invoices and credit notes, not {doc.kind}")
        existing = self._find_by_key(request.idempotency_key)
        if existing:
            invoice_id = existing[0]["id"]
            if existing[0]["state"] in POSTED_STATES:
                number: str = existing[0]["number"]
                return number
        else:
            invoice_id = self._create_invoice(request, doc)
        state = self.read("account.invoice", [invoice_id], ["state"])[0]["state"]
        if state == "draft":
            self.call("account.invoice", "validate_invoice", [invoice_id])
        self.call("account.invoice", "post", [invoice_id])
        row = self.read("account.invoice", [invoice_id], ["number", "state"])[0]
        if row["state"] not in POSTED_STATES:
            raise ErpRejected(f"Tryton left invoice {invoice_id} in state {row['state']}")
        result: str = row["number"]
        return result

    def _expense_accounts(self, product_ids: Iterable[int]) -> dict[int, int | None]:
        """product id -> expense account, from its accounting category (inherited from parents).

        `account_expense_used` is a Python property in Tryton 8, not a field: RPC cannot read it.
        """
        products = self.read("product.product", sorted(product_ids), ["template.account_category"])
        category_of = {row["id"]: _rel(row, "template", "account_category") for row in products}
        fields = ["account_expense", "account_parent", "parent"]
        cache: dict[int, dict[str, Any]] = {}

        def account(category: int | None, depth: int = 0) -> int | None:
            if category is None or depth > 20:
                return None
            if category not in cache:
                cache[category] = self.read("product.category", [category], fields)[0]
            row = cache[category]
            if row["account_parent"]:
                return account(row["parent"], depth + 1)
            result: int | None = row["account_expense"]
            return result

        return {pid: account(cat) for pid, cat in category_of.items()}

    def _create_invoice(self, request: PostingRequest, doc: Invoice | CreditNote) -> int:
        if not request.po_number:
            raise ErpRejected("Tryton adapter posts PO invoices only: the case has no PO")
        purchases = self.search_read(
            "purchase.purchase",
            [("number", "=", request.po_number)],
            ["party", "party.code", "company", "currency", "currency.code", "state"],
        )
        if not purchases:
            raise ErpRejected(f"purchase order {request.po_number} is not in Tryton")
        purchase = purchases[0]
        supplier_code = _rel(purchase, "party", "code")
        if request.supplier_ref and request.supplier_ref != supplier_code:
            raise ErpRejected(
                f"PO {request.po_number} belongs to supplier {supplier_code}, "
                f"not {request.supplier_ref}"
            )
        if doc.currency and doc.currency != _rel(purchase, "currency", "code"):
            raise ErpRejected(
                f"invoice currency {doc.currency} differs from PO currency "
                f"{_rel(purchase, 'currency', 'code')}"
            )
        po_lines = self._purchase_lines([purchase["id"]]).get(purchase["id"], [])
        accounts = self._expense_accounts({line["product"] for line in po_lines if line["product"]})
        party = self.read(
            "party.party",
            [purchase["party"]],
            ["addresses", "account_payable", "supplier_payment_term"],
        )[0]
        payable = party["account_payable"]
        if payable is None:
            # What Tryton's `account_payable_used` does (a property, not readable over RPC).
            payable = self.read("account.configuration", [1], ["default_account_payable"])[0][
                "default_account_payable"
            ]
        if payable is None:
            raise ErpRejected(f"supplier {supplier_code} has no payable account in Tryton")
        if not party["addresses"]:
            raise ErpRejected(f"supplier {supplier_code} has no address in Tryton")
        journals = self.search_read("account.journal", [("type", "=", "expense")], ["id"], limit=1)
        if not journals:
            raise ErpRejected("Tryton has no expense journal")
        sign = Decimal(-1) if isinstance(doc, CreditNote) else Decimal(1)
        lines = [
            self._invoice_line(line, po_lines, accounts, sign, purchase["company"])
            for line in doc.lines
        ]
        comment = [f"Tollgate case {request.case_id}"]
        if request.signers:
            comment.append("signed off by " + ", ".join(request.signers))
        if request.model_versions:
            comment.append(
                "models " + ", ".join(f"{k}={v}" for k, v in sorted(request.model_versions.items()))
            )
        values = {
            "type": "in",
            "company": purchase["company"],
            "party": purchase["party"],
            "invoice_address": party["addresses"][0],
            "currency": purchase["currency"],
            "journal": journals[0]["id"],
            "account": payable,
            "payment_term": party["supplier_payment_term"],
            "invoice_date": doc.issue_date,
            "reference": doc.number,
            "description": KEY_PREFIX + request.idempotency_key,
            "comment": "; ".join(comment),
            "lines": [["create", lines]],
        }
        created: list[int] = self.call("account.invoice", "create", [values])
        return created[0]

    def _invoice_line(
        self,
        line: DocumentLine,
        po_lines: list[dict[str, Any]],
        accounts: dict[int, int | None],
        sign: Decimal,
        company: int,
    ) -> dict[str, Any]:
        po_line = self._po_line_for(line, po_lines)
        account = accounts.get(po_line["product"]) if po_line["product"] else None
        if account is None:
            raise ErpRejected(f"PO line for invoice line {line.line_id} has no expense account")
        return {
            "type": "line",
            "company": company,
            "product": po_line["product"],
            "description": line.description or po_line["description"],
            # Tryton's quantity field is a float; money (unit_price) stays Decimal.
            "quantity": float(sign * line.quantity),
            "unit": po_line["unit"],
            "unit_price": (line.line_amount / line.quantity).quantize(Decimal("0.0001"))
            if line.quantity
            else line.unit_price,
            "account": account,
            "taxes": [["add", po_line["taxes"]]],
            # `origin` is how Tryton links invoice lines to purchase lines (invoiced quantity,
            # the purchase's invoice state).
            "origin": f"purchase.line,{po_line['id']}",
        }

    @staticmethod
    def _po_line_for(line: DocumentLine, po_lines: list[dict[str, Any]]) -> dict[str, Any]:
        if line.po_line_ref:
            ref = line.po_line_ref.strip()
            if ref.isdigit() and 1 <= int(ref) <= len(po_lines):
                return po_lines[int(ref) - 1]
        by_item = [
            pl for pl in po_lines if line.item_id and _rel(pl, "product", "code") == line.item_id
        ]
        if len(by_item) == 1:
            return by_item[0]
        if len(po_lines) == 1:
            return po_lines[0]
        raise ErpRejected(
            f"invoice line {line.line_id} names no PO line Tryton knows "
            f"(po_line_ref={line.po_line_ref!r}, item={line.item_id!r})"
        )

    def list_posted(self, start: date, end: date) -> list[PostedDocument]:
        """Supplier invoices Tollgate posted with an invoice date in [start, end]."""
        rows = self.search_read(
            "account.invoice",
            [
                ("type", "=", "in"),
                ("description", "like", KEY_PREFIX + "%"),
                ("state", "in", list(POSTED_STATES)),
                ("invoice_date", ">=", start),
                ("invoice_date", "<=", end),
            ],
            [
                "number",
                "description",
                "party.code",
                "currency.code",
                "total_amount",
                "move.post_date",
            ],
            order=[("id", "ASC")],
        )
        return [
            PostedDocument(
                idempotency_key=row["description"][len(KEY_PREFIX) :],
                erp_reference=row["number"],
                supplier_ref=_rel(row, "party", "code"),
                currency=_rel(row, "currency", "code"),
                gross=row["total_amount"],
                posted_at=datetime.combine(post_date, time.min, tzinfo=UTC)
                if (post_date := _rel(row, "move", "post_date"))
                else None,
            )
            for row in rows
        ]


class _SessionExpired(Exception):
    """Tryton answered 401: the session is gone (or the login failed)."""


def from_settings(settings: Settings) -> TrytonAdapter:
    """The adapter the settings describe (TOLLGATE_TRYTON_URL, _DATABASE, _USER, _PASSWORD)."""
    return TrytonAdapter(
        settings.tryton_url,
        settings.tryton_database,
        settings.tryton_user,
        settings.tryton_password,
    )

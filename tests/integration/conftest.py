"""A real trytond 8.2 on loopback for the ERP adapter tests (DESIGN §8: tests use the real parts).

Set-up runs in child processes (this file doubles as their script): trytond keeps its pool,
config and caches in process globals, so running proteus inside the pytest process would tie
the whole session to one database file. The initialised database (modules, company, chart of
accounts, fiscal year, a supplier with a VAT id and an IBAN, a product, taxes) is built once
per session and copied per test module; each module then starts its own server on a free port.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

DB_NAME = "tollgate"
ADMIN_USER = "admin"
ADMIN_PASSWORD = "tollgate-admin-pw"
# `bank` brings party bank accounts (IBANs); `purchase` pulls in stock, account, invoicing.
MODULES = ("purchase", "bank")
SUPPLIER_NAME = "Acme Supplies GmbH"
SUPPLIER_VAT = "DE136695976"
SUPPLIER_IBAN = "DE89370400440532013000"
PRODUCT_CODE = "WID-100"
TAX_RATE = "0.19"


def _bin(name: str) -> str:
    """A console script installed next to this interpreter."""
    return str(Path(sys.executable).parent / name)


def write_config(directory: Path, port: int | None = None) -> Path:
    """A trytond config for a SQLite database file in directory."""
    lines = ["[database]", "uri = sqlite://", f"path = {directory}"]
    if port is not None:
        lines += ["[web]", f"listen = 127.0.0.1:{port}"]
    # Tryton's login rate limiting and password hashing defaults are tuned for the internet;
    # the bench logs in from one host, many times.
    lines += ["[session]", "max_attempt = 1000"]
    conf = directory / "trytond.conf"
    conf.write_text("\n".join(lines) + "\n")
    return conf


def _env(directory: Path) -> dict[str, str]:
    passfile = directory / "admin.pw"
    passfile.write_text(ADMIN_PASSWORD + "\n")
    return {**os.environ, "TRYTONPASSFILE": str(passfile)}


def init_database(directory: Path) -> Path:
    """Create and set up the database file in directory (≈ 30 s); return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    conf = write_config(directory)
    db_file = directory / f"{DB_NAME}.sqlite"
    db_file.touch()  # the SQLite backend refuses to initialise a missing file
    subprocess.run(
        [
            _bin("trytond-admin"),
            *("-c", str(conf), "-d", DB_NAME, "--email", "admin@example.com"),
            *("-u", *MODULES, "--activate-dependencies"),
        ],
        env=_env(directory),
        check=True,
        capture_output=True,
    )
    _run_child("setup", conf)
    return db_file


def create_purchase(directory: Path, ordered: int, received: int, price: str) -> dict[str, Any]:
    """Create, confirm and partly receive a PO (invoice method manual); return its facts."""
    conf = write_config(directory)
    return _run_child("purchase", conf, str(ordered), str(received), price)


def _run_child(command: str, conf: Path, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, command, str(conf), *args],
        check=False,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    if done.returncode != 0:
        raise RuntimeError(f"tryton set-up step {command} failed:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class TrytonServer:
    """A running trytond process."""

    directory: Path
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Terminate the server and wait for it."""
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_server(directory: Path, timeout: float = 30.0) -> TrytonServer:
    """Start trytond on a free loopback port over the database in directory; wait for it."""
    port = free_port()
    conf = write_config(directory, port)
    log = (directory / "trytond.log").open("wb")
    process = subprocess.Popen(
        [_bin("trytond"), "-c", str(conf), "-d", DB_NAME],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = TrytonServer(directory, port, process)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"trytond exited: {(directory / 'trytond.log').read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return server
        except OSError:
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"trytond did not answer on port {port} within {timeout} s")


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tryton_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The initialised Tryton database file, built once per session."""
    try:
        import proteus  # noqa: F401
        import trytond  # noqa: F401
    except ImportError:
        pytest.skip("trytond/proteus not installed (pin trytond 8.2 and proteus to run)")
    return init_database(tmp_path_factory.mktemp("tryton-template"))


@dataclass
class TrytonInstance:
    """One module's Tryton: its server, credentials and the PO created for it."""

    server: TrytonServer
    database: str
    user: str
    password: str
    purchase: dict[str, Any]


@pytest.fixture(scope="module")
def tryton(
    tryton_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TrytonInstance]:
    """A trytond on loopback over a fresh copy of the template, with one PO (10 ordered, 6 in)."""
    directory = tmp_path_factory.mktemp("tryton")
    shutil.copyfile(tryton_template, directory / tryton_template.name)
    purchase = create_purchase(directory, ordered=10, received=6, price="12.50")
    server = start_server(directory)
    try:
        yield TrytonInstance(server, DB_NAME, ADMIN_USER, ADMIN_PASSWORD, purchase)
    finally:
        server.stop()


# --- child-process steps (proteus, in-process trytond) --------------------------------------


def _child_setup() -> dict[str, Any]:
    from decimal import Decimal

    from proteus import Model
    from trytond.modules.account.tests.tools import (
        create_chart,
        create_fiscalyear,
        create_tax,
        get_accounts,
    )
    from trytond.modules.account_invoice.tests.tools import (
        create_payment_term,
        set_fiscalyear_invoice_sequences,
    )
    from trytond.modules.company.tests.tools import create_company

    create_company(currency="EUR")
    create_chart()
    fiscalyear = set_fiscalyear_invoice_sequences(create_fiscalyear())
    fiscalyear.click("create_period")
    accounts = get_accounts()

    tax = create_tax(Decimal(TAX_RATE))
    tax.save()
    term = create_payment_term()
    term.save()

    category = Model.get("product.category")(name="Goods", accounting=True)
    category.account_expense = accounts["expense"]
    category.supplier_taxes.append(Model.get("account.tax")(tax.id))
    category.save()

    (unit,) = Model.get("product.uom").find([("name", "=", "Unit")])
    template = Model.get("product.template")()
    template.name = "Widget 100"
    template.code = PRODUCT_CODE
    template.default_uom = unit
    template.type = "goods"
    template.purchasable = True
    template.list_price = Decimal("20")
    template.account_category = category
    template.save()

    party = Model.get("party.party")(name=SUPPLIER_NAME)
    party.identifiers.new(type="eu_vat", code=SUPPLIER_VAT)
    party.supplier_payment_term = Model.get("account.invoice.payment_term")(term.id)
    party.save()

    bank_party = Model.get("party.party")(name="Commerzbank")
    bank_party.save()
    bank = Model.get("bank")(party=bank_party, bic="COBADEFFXXX")
    bank.save()
    account = Model.get("bank.account")(bank=bank)
    account.owners.append(Model.get("party.party")(party.id))
    account.numbers.new(type="iban", number=SUPPLIER_IBAN)
    account.save()
    return {"supplier_id": party.id, "supplier_code": party.code}


def _child_purchase(ordered: int, received: int, price: str) -> dict[str, Any]:
    from decimal import Decimal

    from proteus import Model

    (party,) = Model.get("party.party").find([("name", "=", SUPPLIER_NAME)])
    (product,) = Model.get("product.product").find([("code", "=", PRODUCT_CODE)])
    purchase = Model.get("purchase.purchase")()
    purchase.party = party
    # `manual`: Tryton must not draft its own supplier invoice; Tollgate posts the only one.
    purchase.invoice_method = "manual"
    line = purchase.lines.new()
    line.product = product
    line.quantity = ordered
    line.unit_price = Decimal(price)
    purchase.click("quote")
    purchase.click("confirm")

    shipment_ref = None
    if received:
        move_model = Model.get("stock.move")
        shipment = Model.get("stock.shipment.in")()
        shipment.supplier = party
        for move in purchase.moves:
            incoming = move_model(id=move.id)
            incoming.quantity = received
            shipment.incoming_moves.append(incoming)
        shipment.save()
        for move in shipment.inventory_moves:
            move.quantity = received
        shipment.click("receive")
        shipment.click("do")
        shipment_ref = shipment.number
    purchase.reload()
    return {
        "number": purchase.number,
        "id": purchase.id,
        "state": purchase.state,
        "line_ids": [line.id for line in purchase.lines],
        "supplier_code": party.code,
        "shipment": shipment_ref,
    }


def _child_main(argv: list[str]) -> None:
    from proteus import config

    command, conf = argv[0], argv[1]
    config.set_trytond(database=DB_NAME, user=ADMIN_USER, config_file=conf)
    if command == "setup":
        result = _child_setup()
    elif command == "purchase":
        result = _child_purchase(int(argv[2]), int(argv[3]), argv[4])
    else:
        raise SystemExit(f"unknown command {command}")
    print(json.dumps(result))


if __name__ == "__main__":
    _child_main(sys.argv[1:])

"""Supplier layouts for synthetic PDF invoices: label words, date, number and currency styles.

Each `Layout` is one imagined vendor's house style. Its `format_*` methods are the single
source of the strings printed on the page, so the extractor's evaluation can ask a layout
how it wrote a date or an amount instead of guessing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

HeaderStyle = Literal["letter_left", "letter_right", "din"]
TaxStyle = Literal["inline", "table"]
CurrencyStyle = Literal["symbol_before", "symbol_after", "code_before", "code_after"]
DateStyle = Literal["dmy_slash", "dmy_dot", "iso", "long_en", "long_de", "long_fr"]
Column = Literal["pos", "item", "desc", "qty", "unit", "price", "tax", "amount"]

_CENT = Decimal("0.01")
_PRICE_STEP = Decimal("0.0001")

MONTHS: dict[str, tuple[str, ...]] = {
    "en": (
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ),
    "de": (
        "Januar",
        "Februar",
        "März",
        "April",
        "Mai",
        "Juni",
        "Juli",
        "August",
        "September",
        "Oktober",
        "November",
        "Dezember",
    ),
    "fr": (
        "janvier",
        "février",
        "mars",
        "avril",
        "mai",
        "juin",
        "juillet",
        "août",
        "septembre",
        "octobre",
        "novembre",
        "décembre",
    ),
}

# Only currencies whose sign is in WinAnsi get a symbol; the rest keep their ISO code.
CURRENCY_SYMBOLS = {"EUR": "€", "GBP": "£", "USD": "$", "JPY": "¥"}

# UN/ECE Rec. 20 codes as a clerk would read them on paper, per language.
UNIT_WORDS: dict[str, dict[str, str]] = {
    "en": {
        "C62": "pcs",
        "EA": "ea",
        "H87": "pcs",
        "KGM": "kg",
        "MTR": "m",
        "LTR": "l",
        "HUR": "h",
        "DAY": "days",
        "SET": "set",
        "XBX": "box",
        "PR": "pair",
        "MTK": "m²",
        "TNE": "t",
        "KWH": "kWh",
        "LS": "lump sum",
    },
    "de": {
        "C62": "Stk.",
        "EA": "Stk.",
        "H87": "Stk.",
        "KGM": "kg",
        "MTR": "m",
        "LTR": "l",
        "HUR": "Std.",
        "DAY": "Tage",
        "SET": "Satz",
        "XBX": "Karton",
        "PR": "Paar",
        "MTK": "m²",
        "TNE": "t",
        "KWH": "kWh",
        "LS": "pauschal",
    },
    "fr": {
        "C62": "pce",
        "EA": "u.",
        "H87": "pce",
        "KGM": "kg",
        "MTR": "m",
        "LTR": "l",
        "HUR": "h",
        "DAY": "jours",
        "SET": "lot",
        "XBX": "carton",
        "PR": "paire",
        "MTK": "m²",
        "TNE": "t",
        "KWH": "kWh",
        "LS": "forfait",
    },
}

COUNTRY_NAMES: dict[str, dict[str, str]] = {
    "en": {
        "DE": "Germany",
        "FR": "France",
        "AT": "Austria",
        "CH": "Switzerland",
        "BE": "Belgium",
        "NL": "Netherlands",
        "LU": "Luxembourg",
        "IT": "Italy",
        "ES": "Spain",
        "GB": "United Kingdom",
        "IE": "Ireland",
        "US": "United States",
        "PL": "Poland",
        "DK": "Denmark",
        "SE": "Sweden",
    },
    "de": {
        "DE": "Deutschland",
        "FR": "Frankreich",
        "AT": "Österreich",
        "CH": "Schweiz",
        "BE": "Belgien",
        "NL": "Niederlande",
        "LU": "Luxemburg",
        "IT": "Italien",
        "ES": "Spanien",
        "GB": "Vereinigtes Königreich",
        "IE": "Irland",
        "US": "USA",
        "PL": "Polen",
        "DK": "Dänemark",
        "SE": "Schweden",
    },
    "fr": {
        "DE": "Allemagne",
        "FR": "France",
        "AT": "Autriche",
        "CH": "Suisse",
        "BE": "Belgique",
        "NL": "Pays-Bas",
        "LU": "Luxembourg",
        "IT": "Italie",
        "ES": "Espagne",
        "GB": "Royaume-Uni",
        "IE": "Irlande",
        "US": "États-Unis",
        "PL": "Pologne",
        "DK": "Danemark",
        "SE": "Suède",
    },
}


@dataclass(frozen=True)
class Layout:
    """One supplier's house style: words, formats and where things sit on the page."""

    name: str
    language: Literal["en", "de", "fr"]
    labels: Mapping[str, str]
    date_style: DateStyle
    thousands_sep: str
    decimal_sep: str
    currency_style: CurrencyStyle
    header_style: HeaderStyle
    columns: tuple[Column, ...]
    tax_style: TaxStyle = "inline"
    font: Literal["Helvetica", "Times", "Courier"] = "Helvetica"
    base_size: float = 9.0
    # Grey level of table-header fill; None draws only a rule, like plain ERP printouts.
    header_fill: int | None = 225
    city_first: bool = False  # UK style "London SW1A 1AA" instead of "10115 Berlin"
    currency_in_headers: bool = False  # "Amount (EUR)" in the column header
    show_payable: bool = False  # print "Amount due" even when it equals the gross total
    group_iban: bool = True  # DE89 3704 0044 … as most letterheads print it
    colon: str = ":"  # French typography puts a space before the colon
    extra: Mapping[str, str] = field(default_factory=dict)

    def format_date(self, d: date) -> str:
        """The date as this layout prints it, e.g. 07.03.2026 or 7 mars 2026."""
        style = self.date_style
        if style == "dmy_slash":
            return f"{d.day:02d}/{d.month:02d}/{d.year}"
        if style == "dmy_dot":
            return f"{d.day:02d}.{d.month:02d}.{d.year}"
        if style == "iso":
            return d.isoformat()
        if style == "long_en":
            return f"{d.day} {MONTHS['en'][d.month - 1]} {d.year}"
        if style == "long_de":
            return f"{d.day}. {MONTHS['de'][d.month - 1]} {d.year}"
        # French writes the first of the month as an ordinal ("1er mars").
        day = "1er" if d.day == 1 else str(d.day)
        return f"{day} {MONTHS['fr'][d.month - 1]} {d.year}"

    def _group(self, text: str) -> str:
        """Swap Python's 1,234.56 separators for this layout's."""
        return (
            text.replace(",", "\0").replace(".", self.decimal_sep).replace("\0", self.thousands_sep)
        )

    def format_amount(self, x: Decimal) -> str:
        """A money amount to two decimals without currency, e.g. 1.234,56 or 1 234.56."""
        q = x.quantize(_CENT, rounding=ROUND_HALF_UP)
        return self._group(f"{q:,.2f}")

    def format_price(self, x: Decimal) -> str:
        """A unit price: two decimals, up to four when the price needs them."""
        q = x.quantize(_PRICE_STEP, rounding=ROUND_HALF_UP)
        if q == q.quantize(_CENT):
            return self.format_amount(q)
        places = min(4, max(2, -q.normalize().as_tuple().exponent))  # type: ignore[operator]
        return self._group(f"{q:,.{places}f}")

    def format_quantity(self, x: Decimal) -> str:
        """A quantity with no trailing zeros, e.g. 12 or 2,5."""
        n = x.normalize()
        places = max(0, -n.as_tuple().exponent)  # type: ignore[operator]
        return self._group(f"{n:,.{places}f}")

    def format_money(self, x: Decimal, currency: str | None) -> str:
        """An amount with its currency as code or symbol, e.g. € 1,234.56 or 1 234,56 EUR."""
        amount = self.format_amount(x)
        if not currency:
            return amount
        style = self.currency_style
        symbol = CURRENCY_SYMBOLS.get(currency)
        if style == "symbol_before" and symbol:
            return f"{symbol}{amount}" if amount[0] != "-" else f"-{symbol}{amount[1:]}"
        if style == "symbol_after" and symbol:
            return f"{amount} {symbol}"
        if style == "code_before":
            return f"{currency} {amount}"
        return f"{amount} {currency}"

    def format_iban(self, iban: str) -> str:
        """The IBAN as printed: in groups of four, or as one word."""
        compact = iban.replace(" ", "")
        if not self.group_iban:
            return compact
        return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))

    def format_rate(self, rate: Decimal) -> str:
        """A tax rate in percent, e.g. 19 % or 5,5 %."""
        return f"{self.format_quantity(rate)} %"

    def unit_word(self, code: str) -> str:
        """The printed unit for a UN/ECE code; unknown codes are printed as they are."""
        return UNIT_WORDS[self.language].get(code, code)

    def country_name(self, code: str) -> str:
        """The printed country for an ISO 3166 code; unknown codes are printed as they are."""
        return COUNTRY_NAMES[self.language].get(code, code)


_EN = {
    "title_invoice": "INVOICE",
    "title_credit_note": "CREDIT NOTE",
    "title_claim": "DEBIT NOTE",
    "number_invoice": "Invoice No.",
    "number_credit_note": "Credit Note No.",
    "number_claim": "Debit Note No.",
    "issue_date": "Invoice Date",
    "due_date": "Due Date",
    "po": "PO Number",
    "buyer_reference": "Your Reference",
    "contract": "Contract",
    "billing_reference": "Original Invoice",
    "claim_reason": "Reason",
    "bill_to": "Bill To",
    "vat_id": "VAT Reg. No.",
    "registration_id": "Company No.",
    "email": "Email",
    "pos": "#",
    "item": "Item",
    "desc": "Description",
    "qty": "Qty",
    "unit": "Unit",
    "price": "Unit Price",
    "tax": "VAT",
    "amount": "Amount",
    "subtotal": "Subtotal",
    "allowance": "Discount",
    "charge": "Surcharge",
    "freight": "Freight",
    "net": "Net Total",
    "tax_row": "VAT {rate} on {base}",
    "tax_total": "Total VAT",
    "gross": "Total",
    "prepaid": "Paid in advance",
    "rounding": "Rounding",
    "payable": "Amount Due",
    "tax_rate": "VAT rate",
    "tax_base": "Net amount",
    "tax_amount": "VAT",
    "exempt": "Exempt",
    "terms": "Payment Terms",
    "iban": "IBAN",
    "bic": "BIC",
    "account_name": "Account name",
    "payment_reference": "Payment reference",
    "page": "Page {n} of {total}",
    "carried": "Carried forward",
    "brought": "Brought forward",
    "continued": "continued",
    "notes": "Notes",
}

_DE = {
    "title_invoice": "Rechnung",
    "title_credit_note": "Gutschrift",
    "title_claim": "Belastungsanzeige",
    "number_invoice": "Rechnungsnummer",
    "number_credit_note": "Gutschriftsnummer",
    "number_claim": "Belegnummer",
    "issue_date": "Rechnungsdatum",
    "due_date": "Fällig am",
    "po": "Bestellnummer",
    "buyer_reference": "Ihr Zeichen",
    "contract": "Vertrag",
    "billing_reference": "Zu Rechnung",
    "claim_reason": "Grund",
    "bill_to": "Rechnungsempfänger",
    "vat_id": "USt-IdNr.",
    "registration_id": "Handelsregister",
    "email": "E-Mail",
    "pos": "Pos.",
    "item": "Art.-Nr.",
    "desc": "Bezeichnung",
    "qty": "Menge",
    "unit": "Einheit",
    "price": "Einzelpreis",
    "tax": "USt.",
    "amount": "Gesamtpreis",
    "subtotal": "Summe Positionen",
    "allowance": "Rabatt",
    "charge": "Zuschlag",
    "freight": "Fracht",
    "net": "Nettobetrag",
    "tax_row": "zzgl. USt. {rate} auf {base}",
    "tax_total": "Umsatzsteuer",
    "gross": "Gesamtbetrag",
    "prepaid": "Bereits gezahlt",
    "rounding": "Rundung",
    "payable": "Zahlbetrag",
    "tax_rate": "USt.-Satz",
    "tax_base": "Netto",
    "tax_amount": "USt.",
    "exempt": "steuerfrei",
    "terms": "Zahlungsbedingungen",
    "iban": "IBAN",
    "bic": "BIC",
    "account_name": "Kontoinhaber",
    "payment_reference": "Verwendungszweck",
    "page": "Seite {n} von {total}",
    "carried": "Übertrag",
    "brought": "Übertrag",
    "continued": "Fortsetzung",
    "notes": "Hinweise",
}

_FR = {
    "title_invoice": "FACTURE",
    "title_credit_note": "AVOIR",
    "title_claim": "NOTE DE DÉBIT",
    "number_invoice": "N° de facture",
    "number_credit_note": "N° d'avoir",
    "number_claim": "N° de note",
    "issue_date": "Date de facture",
    "due_date": "Date d'échéance",
    "po": "Bon de commande",
    "buyer_reference": "Votre référence",
    "contract": "Contrat",
    "billing_reference": "Facture d'origine",
    "claim_reason": "Motif",
    "bill_to": "Facturé à",
    "vat_id": "N° TVA intracom.",
    "registration_id": "SIRET",
    "email": "Courriel",
    "pos": "N°",
    "item": "Réf.",
    "desc": "Désignation",
    "qty": "Qté",
    "unit": "Unité",
    "price": "P.U. HT",
    "tax": "TVA",
    "amount": "Montant HT",
    "subtotal": "Total lignes HT",
    "allowance": "Remise",
    "charge": "Majoration",
    "freight": "Frais de port",
    "net": "Total HT",
    "tax_row": "TVA {rate} sur {base}",
    "tax_total": "Total TVA",
    "gross": "Total TTC",
    "prepaid": "Acompte versé",
    "rounding": "Arrondi",
    "payable": "Net à payer",
    "tax_rate": "Taux TVA",
    "tax_base": "Base HT",
    "tax_amount": "Montant TVA",
    "exempt": "Exonéré",
    "terms": "Conditions de paiement",
    "iban": "IBAN",
    "bic": "BIC",
    "account_name": "Titulaire",
    "payment_reference": "Référence de paiement",
    "page": "Page {n} / {total}",
    "carried": "À reporter",
    "brought": "Report",
    "continued": "suite",
    "notes": "Mentions",
}


def _labels(base: Mapping[str, str], **changes: str) -> dict[str, str]:
    """A label table that differs from its language's base in a few words."""
    return {**base, **changes}


LAYOUTS: dict[str, Layout] = {
    layout.name: layout
    for layout in (
        # A British wholesaler: letterhead left, serif type, £/€ before the amount.
        Layout(
            name="en_classic",
            language="en",
            labels=_EN,
            date_style="dmy_slash",
            thousands_sep=",",
            decimal_sep=".",
            currency_style="symbol_before",
            header_style="letter_left",
            columns=("pos", "desc", "qty", "unit", "price", "amount"),
            font="Times",
            base_size=9.5,
            city_first=True,
        ),
        # A SaaS-style vendor: logo right, long English dates, ISO codes before the amount.
        Layout(
            name="en_modern",
            language="en",
            labels=_labels(
                _EN,
                title_invoice="Invoice",
                title_credit_note="Credit Note",
                title_claim="Debit Note",
                number_invoice="Invoice number",
                number_credit_note="Credit note number",
                issue_date="Date of issue",
                due_date="Date due",
                po="PO",
                bill_to="Billed to",
                vat_id="VAT ID",
                item="SKU",
                qty="Quantity",
                price="Unit price",
                subtotal="Subtotal",
                net="Total excl. VAT",
                tax_row="VAT ({rate} on {base})",
                gross="Total incl. VAT",
                payable="Amount due",
                terms="Terms",
            ),
            date_style="long_en",
            thousands_sep=",",
            decimal_sep=".",
            currency_style="code_before",
            header_style="letter_right",
            columns=("item", "desc", "price", "qty", "unit", "amount"),
            header_fill=240,
            show_payable=True,
        ),
        # A Nordic/Dutch ERP printout: monospaced, ISO dates, spaces between thousands.
        Layout(
            name="en_iso",
            language="en",
            labels=_labels(
                _EN,
                title_invoice="INVOICE",
                number_invoice="Invoice no",
                number_credit_note="Credit note no",
                issue_date="Invoice date",
                due_date="Due date",
                po="Purchase order",
                buyer_reference="Buyer ref",
                bill_to="Customer",
                vat_id="VAT no",
                item="Art no",
                price="Price",
                tax="VAT %",
                amount="Net",
                gross="Invoice total",
                payable="To pay",
                tax_row="VAT {rate} of {base}",
            ),
            date_style="iso",
            thousands_sep=" ",
            decimal_sep=".",
            currency_style="code_after",
            header_style="din",
            columns=("pos", "item", "desc", "qty", "unit", "price", "tax", "amount"),
            tax_style="table",
            font="Courier",
            base_size=8.0,
            header_fill=None,
            currency_in_headers=True,
            group_iban=False,
        ),
        # A German Mittelstand supplier: DIN 5008 letter with address window and info block.
        Layout(
            name="de_din",
            language="de",
            labels=_DE,
            date_style="dmy_dot",
            thousands_sep=".",
            decimal_sep=",",
            currency_style="symbol_after",
            header_style="din",
            columns=("pos", "qty", "unit", "desc", "price", "amount"),
            tax_style="table",
        ),
        # A German trading house: modern letterhead right, long dates, EUR after the amount.
        Layout(
            name="de_modern",
            language="de",
            labels=_labels(
                _DE,
                title_invoice="RECHNUNG",
                title_credit_note="GUTSCHRIFT",
                number_invoice="Rechnung Nr.",
                number_credit_note="Gutschrift Nr.",
                issue_date="Datum",
                due_date="Zahlbar bis",
                po="Ihre Bestellung",
                bill_to="Kunde",
                item="Artikel",
                desc="Beschreibung",
                qty="Anzahl",
                unit="ME",
                price="Preis",
                tax="MwSt.",
                amount="Betrag",
                net="Summe netto",
                tax_row="MwSt. {rate} auf {base}",
                tax_total="MwSt. gesamt",
                gross="Rechnungsbetrag",
                payable="Zu zahlen",
                vat_id="USt-IdNr.",
            ),
            date_style="long_de",
            thousands_sep=".",
            decimal_sep=",",
            currency_style="code_after",
            header_style="letter_right",
            columns=("item", "desc", "qty", "unit", "price", "tax", "amount"),
            header_fill=210,
            currency_in_headers=True,
        ),
        # A French distributor: classic letterhead left, serif, "1 234,56 €".
        Layout(
            name="fr_classic",
            language="fr",
            colon=" :",
            labels=_FR,
            date_style="dmy_slash",
            thousands_sep=" ",
            decimal_sep=",",
            currency_style="symbol_after",
            header_style="letter_left",
            columns=("item", "desc", "qty", "unit", "price", "amount"),
            tax_style="table",
            font="Times",
            base_size=9.5,
        ),
        # A Belgian/Swiss-French vendor: letterhead right, long French dates, "1.234,56 EUR".
        Layout(
            name="fr_modern",
            language="fr",
            colon=" :",
            labels=_labels(
                _FR,
                title_invoice="Facture",
                title_credit_note="Avoir",
                title_claim="Note de débit",
                number_invoice="Facture n°",
                number_credit_note="Avoir n°",
                issue_date="Date",
                due_date="Échéance",
                po="Réf. commande",
                bill_to="Client",
                vat_id="TVA",
                pos="Ligne",
                price="Prix unitaire",
                amount="Total HT",
                net="Montant HT",
                tax_row="TVA {rate} sur {base}",
                gross="Total TTC",
                payable="Montant à payer",
            ),
            date_style="long_fr",
            thousands_sep=".",
            decimal_sep=",",
            currency_style="code_after",
            header_style="letter_right",
            columns=("pos", "desc", "unit", "qty", "price", "amount"),
            header_fill=235,
            show_payable=True,
        ),
    )
}


def layout_names() -> list[str]:
    """Names of all layouts, in a stable order."""
    return list(LAYOUTS)

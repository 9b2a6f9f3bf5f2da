"""Label lexicons: printed label words (EN/DE/FR/NL) and the header field each one announces.

Each entry is a regular expression (matched case-insensitively on word boundaries) and a weight
in (0, 1]: how surely the label names that field. Where two labels overlap in a text the longer
match wins, so `Total HT` (net) beats `Total` (gross) and `Subtotal` never reads as `Total`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

FIELDS = (
    "supplier_name",
    "supplier_vat_id",
    "iban",
    "invoice_number",
    "issue_date",
    "due_date",
    "po_reference",
    "currency",
    "net_total",
    "tax_total",
    "gross_total",
)

_NO = r"(?:n[°ºo]\.?|nr\.?|no\.?|num(?:ber|éro|mer)?\.?|#)"

LABELS: dict[str, list[tuple[str, float]]] = {
    "invoice_number": [
        (rf"invoice\s*{_NO}", 1.0),
        (r"invoice\s*id", 0.9),
        (r"rechnungs[- ]?(?:nr\.?|nummer|no\.?)", 1.0),
        (rf"(?:handels)?rechnung\s*(?:\(\d+\)\s*)?{_NO}", 1.0),
        (r"receipt\s*(?:no\.?|number|#)|booking\s*(?:id|no\.?|ref(?:erence)?)", 0.6),
        (rf"facture\s*{_NO}", 1.0),
        (rf"{_NO}\s*(?:de\s+)?facture", 1.0),
        (r"factuurnummer|factuur\s*nr\.?", 1.0),
        # The document number of credit notes and debit notes ("Gutschriftsnummer", "N° d'avoir");
        # the bare title word ("Avoir", "Gutschrift") is as weak a label as "Invoice".
        (rf"(?:credit\s*note|debit\s*note|gutschrift|avoir)\s*{_NO}", 1.0),
        (r"credit\s*note|debit\s*note|gutschrift|avoir|belastungsanzeige", 0.45),
        (r"gutschrifts?-?(?:nummer|nr\.?)", 1.0),
        (rf"{_NO}\s*(?:d['\u2019]\s*avoir|de\s*note(?:\s*de\s*d[ée]bit)?)", 1.0),
        (r"belegnummer|beleg[- ]nr\.?|document\s*no\.?", 0.8),
        (r"invoice|rechnung|facture|factuur|handelsrechnung", 0.45),
    ],
    "issue_date": [
        (
            r"invoice\s*date|date\s*of\s*(?:invoice|issue)|date\s*issued|issue\s*date|issued\s*(?:at|on)",
            1.0,
        ),
        (r"rechnungsdatum|beleg-?\s*datum|liefer-?\s*und\s*rechnungsdatum|ausstellungsdatum", 1.0),
        (r"date\s*(?:de\s*)?(?:la\s*)?facture|date\s*d['\u2019]émission", 1.0),
        (r"factuurdatum|factuur\s*datum", 1.0),
        (r"datum|date|dated|vom|von|du|le|den", 0.4),
    ],
    "due_date": [
        (
            r"due\s*date|date\s*due|payment\s*due|due\s*on|pay(?:able)?\s*(?:by|until)|remit\s*until",
            1.0,
        ),
        (r"fällig(?:keit|keitsdatum)?(?:\s*am)?|zahlungsziel|zahlbar\s*bis", 0.9),
        (r"bis\s*zum", 0.6),  # also in running payment-terms text
        (r"date\s*d['\u2019]échéance|échéance|date\s*limite\s*de\s*paiement", 1.0),
        (r"vervaldatum|uiterste\s*betaaldatum", 1.0),
    ],
    "po_reference": [
        (
            r"p\.?o\.?\s*(?:number|no\.?|#|ref(?:erence)?)|purchase\s*order(?:\s*(?:no\.?|number))?",
            1.0,
        ),
        (r"your\s*order(?:\s*(?:no\.?|number))?|order\s*(?:no\.?|number|id)", 0.7),
        (r"bestell(?:ung|nummer|-?nr\.?)(?:\s*nr\.?)?(?:\s*kunde)?|ihre\s*auftragsnummer", 0.9),
        (r"n[°º]\s*(?:de\s*)?bon\s*de\s*commande|bon\s*de\s*commande|votre\s*r[ée]f[ée]rence", 0.9),
        (r"r[ée]f(?:[ée]rence|\.)?\s*(?:de\s*)?commande", 0.9),
        # Capitals only and not part of a value ("PO-77812"), so "Po Box" does not count.
        (r"(?-i:PO)(?![-/_.]?\w)", 0.6),
        (r"ordernummer|bestelnummer|uw\s*referentie", 0.8),
    ],
    "gross_total": [
        (r"grand\s*total|total\s*(?:amount\s*)?due|amount\s*due|balance\s*due", 1.0),
        (r"total\s*for\s*this\s*invoice|invoice\s*total|total\s*incl\.?(?:uding)?\s*vat", 1.0),
        (r"total\s*(?:€|eur|usd|\$)?\s*incl\.?\s*(?:vat|tax)", 1.0),
        (r"gesamtbetrag|bruttosumme|rechnungs(?:summe|betrag)\s*brutto|endsumme", 1.0),
        (r"summe\s*gesamt|gesamtsumme|rechnungsbetrag|zahlbetrag|endbetrag|brutto", 0.8),
        (r"total\s*ttc|montant\s*ttc|net\s*[àa]\s*payer|somme\s*[àa]\s*payer|montant\s*total", 1.0),
        (r"totaal|factuur\s*totaal|te\s*betalen|totaalbedrag", 0.9),
        (r"due\s*payable|amount\s*payable", 0.9),
        (r"total", 0.7),
    ],
    "net_total": [
        (
            r"net\s*total|total\s*net|net\s*amount|total\s*excl\.?(?:uding)?\s*(?:vat|tax)",
            1.0,
        ),
        # A subtotal is the net only until discounts, freight or surcharges follow it.
        (r"sub\s*-?\s*total", 0.9),
        (r"amount\s*(?:excl\.?|before)\s*(?:vat|tax)|untaxed\s*amount", 1.0),
        (r"nettobetrag|rechnungssumme\s*(?:netto|ohne\s*ust\.?)|nettosumme|summe\s*netto", 1.0),
        (r"positionen\s*netto|gesamt\s*netto|netto", 0.6),
        (r"total\s*h\.?t\.?|montant\s*(?:eur\s*)?h\.?t\.?|sous[- ]total", 1.0),
        (r"exclusief\s*btw|subtotaal|totaal\s*excl\.?\s*btw", 0.9),
    ],
    "tax_total": [
        (r"total\s*(?:vat|tax)|vat\s*total|tax\s*total|(?:vat|tax)\s*amount|sales\s*tax", 1.0),
        (r"ust\.?\s*gesamt|steuerbetrag|mwst\.?\s*betrag|umsatzsteuer\s*gesamt|summe\s*mwst", 1.0),
        (r"umsatzsteuer|mehrwertsteuer|mwst\.?\s*gesamt", 0.9),
        (r"total\s*tva|montant\s*(?:de\s*la\s*)?tva", 1.0),
        (r"btw\s*bedrag|totaal\s*btw", 1.0),
        (
            r"(?:zzgl\.|zuzüglich|plus)?\s*\d{1,2}(?:[.,]\d+)?\s*%\s*(?:mwst|ust|vat|tva|btw)\.?",
            0.8,
        ),
        (r"(?:vat|tax|tva|btw|mwst|ust)\.?\s*\(?\d{1,2}(?:[.,]\d+)?\s*%\)?", 0.8),
        (r"vat|tax|tva|btw|mwst|ust", 0.5),
    ],
    "currency": [
        (r"currency|währung|devise|valuta|beträge\s*in|amounts?\s*in", 1.0),
    ],
    "supplier_vat_id": [
        (r"ust\.?-?\s*id\.?-?\s*nr\.?|ust-?id|ustid|umsatzsteuer-?id(?:entifikationsnummer)?", 1.0),
        (r"vat\s*(?:reg(?:istration)?\.?\s*)?(?:id|no\.?|number)|vat-id|tax\s*id", 1.0),
        (rf"{_NO}?\s*tva(?:\s*intra(?:communautaire)?)?|btw(?:-?nummer)?", 0.8),
    ],
    "iban": [(r"iban", 1.0)],
}

# Labels that name a field of the *buyer* (or something else): values next to them are not
# the supplier's, and they keep generic words like "date" or "total" from matching there.
BLOCKERS: list[str] = [
    r"client|kunden?-?(?:nr\.?|nummer)|klantnummer|customer\s*(?:no\.?|number|id)",
    r"account\s*(?:no\.?|number)|konto-?nr\.?|kto-?nr\.?",
    r"order\s*date|orderdatum|bestelldatum|date\s*de\s*commande|leistungsdatum|lieferdatum",
    r"date\s*of\s*delivery|delivery\s*date|date\s*de\s*livraison|liefer-\s*und\s*leistungsdatum",
    r"n[°º]\s*tva\s*client|uw\s*btw\s*nummer|your\s*vat|vat\s*no\.?\s*client",
    r"tax\s*%|%\s*tva|btw\s*%|steuersatz|taux",
    r"page|seite",
    r"ihr(?:e)?\s*zeichen|unser\s*zeichen|your\s*ref(?:erence)?|our\s*ref(?:erence)?",
    r"vertrag(?:snummer)?|contract(?:\s*no\.?)?|contrat",
    # Column headers ("price excl. VAT") and references to other invoices.
    r"ohne\s*(?:mwst|ust)\.?|hors\s*taxes?|(?:prijs|price|preis)\s*(?:incl|excl|inkl|exkl)\.?\s*(?:btw|vat|mwst)",
    r"(?:n[°º]\s*de\s*|date\s*de\s*)?facture\s*(?:associ[ée]e|li[ée]e)|related\s*invoice|original\s*invoice",
    r"facture\s*d['\u2019]\s*origine|zu\s*rechnung|(?:bezug|zur)\s*rechnung",
]

SELLER_HEADINGS = (
    r"verkäufer|lieferant|seller|supplier|vendor|fournisseur|vendeur|leverancier|sold\s*by|"
    r"service\s*provider"
)
BUYER_HEADINGS = (
    r"käufer|rechnungsempfänger|leistungsempfänger|bill(?:ed)?\s*-?\s*to|billing\s*address|"
    r"ship(?:ped)?\s*-?\s*to|invoiced\s*to|factur[ée]\s*[àa]|"
    r"shipping\s*address|invoice\s*to|adresse\s*du\s*client|client|kunde|factuuradres|"
    r"afleveradres|buyer|customer|sold\s*to|warenempfänger|destinataire|"
    # Other parties whose blocks also carry names, VAT ids and IBANs.
    r"repr[ée]sentant\s*fiscal|tax\s*representative|fiskalvertreter|payee|bénéficiaire|"
    r"zahlungsempfänger"
)

# Legal forms that end a company name; the short ones only in capitals (so "kg" stays a unit).
LEGAL_FORMS = (
    r"(?i:gmbh(?:\s*&\s*co\.?\s*kg)?|sarl|s\.a\.r\.l\.|sasu|eurl|b\.\s*v\.|n\.\s*v\.|inc\.?|ltd\.?|"
    r"limited|llc|plc|corp\.?|corporation|pvt\.?\s*ltd\.?|private\s*limited|s\.p\.a\.|s\.r\.l\.)|"
    r"AG|KG|OHG|e\.\s*K\.|SE|UG|SAS|SA|S\.A\.|BV|NV|SRL|SpA|Oy|AB|AS|A/S|Co\."
)

CURRENCY_SYMBOLS = {"€": "EUR", "$": "USD", "£": "GBP", "₹": "INR", "rs": "INR", "zł": "PLN"}
CURRENCY_CODES = [
    "EUR",
    "USD",
    "GBP",
    "CHF",
    "INR",
    "PLN",
    "SEK",
    "NOK",
    "DKK",
    "CZK",
    "HUF",
    "JPY",
    "CNY",
    "CAD",
    "AUD",
    "NZD",
    "ZAR",
    "RON",
    "BGN",
    "HRK",
    "TRY",
]
CURRENCY_NAMES = {"euro": "EUR", "euros": "EUR", "dollar": "USD", "dollars": "USD"}


@dataclass(frozen=True)
class Label:
    """A compiled label: which field it announces and how surely."""

    field: str
    pattern: re.Pattern[str]
    weight: float
    learned: bool = False
    source: str = ""  # the pattern without its word boundaries, for `screen`


def _compile(text: str) -> re.Pattern[str]:
    # Word boundaries that treat accented letters as letters too.
    return re.compile(rf"(?<![^\W\d_])(?:{text})(?![^\W\d_])", re.IGNORECASE)


@cache
def _screen(sources: tuple[str, ...]) -> re.Pattern[str]:
    return _compile("|".join(f"(?:{s})" for s in sources))


def screen(labels: Sequence[Label]) -> re.Pattern[str]:
    """One pattern matching wherever any of the labels matches (a cheap test before each one)."""
    return _screen(tuple(label.source for label in labels))


@cache
def _base_labels() -> tuple[Label, ...]:
    # Compiled once per process: building ~120 patterns per document cost more than using them.
    out = [
        Label(field, _compile(pattern), weight, source=pattern)
        for field, entries in LABELS.items()
        for pattern, weight in entries
    ]
    out.extend(Label("_blocker", _compile(p), 1.0, source=p) for p in BLOCKERS)
    return tuple(out)


def compiled_labels(extra: dict[str, str] | None = None) -> list[Label]:
    """The lexicon as compiled labels, plus learned label texts (label -> field) boosted."""
    out = list(_base_labels())
    for text, field in (extra or {}).items():
        escaped = re.escape(text.strip().rstrip(":"))
        out.append(Label(field, _compile(escaped), 1.3, learned=True, source=escaped))
    return out

"""Master data of a synthetic world: buyer companies, suppliers and their item catalogues.

Supplier names, addresses, VAT ids and IBANs come from Faker's locale providers (valid IBAN
check digits, national VAT formats), seeded from the world seed, so a world is the same on every
machine with the pinned Faker. Volume per supplier follows a Pareto (Zipf) law: a few suppliers
send most invoices, as in every AP department.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from faker import Faker

from training.synth.layouts import LAYOUTS

CENT = Decimal("0.01")


@dataclass(frozen=True)
class Country:
    """What a supplier's country decides: locale, language, currency, VAT rates, legal forms."""

    code: str
    locale: str
    language: str
    currency: str
    standard_rate: Decimal
    reduced_rate: Decimal
    legal_forms: tuple[str, ...]


COUNTRIES = {
    "DE": Country("DE", "de_DE", "de", "EUR", Decimal(19), Decimal(7), ("GmbH", "AG", "KG")),
    "AT": Country("AT", "de_AT", "de", "EUR", Decimal(20), Decimal(10), ("GmbH", "OG")),
    "FR": Country("FR", "fr_FR", "fr", "EUR", Decimal(20), Decimal("5.5"), ("SARL", "SAS", "SA")),
    "GB": Country("GB", "en_GB", "en", "GBP", Decimal(20), Decimal(5), ("Ltd", "PLC", "LLP")),
    "NL": Country("NL", "nl_NL", "en", "EUR", Decimal(21), Decimal(9), ("BV", "NV")),
}
# Share of suppliers per country: a German retailer buys mostly at home.
COUNTRY_MIX = (("DE", 0.45), ("FR", 0.2), ("GB", 0.15), ("AT", 0.1), ("NL", 0.1))


@dataclass(frozen=True)
class Company:
    """A buying company of the group (the invoice's buyer)."""

    code: str
    name: str
    vat_id: str
    country: str
    street: str
    city: str
    postal_code: str


COMPANIES = (
    Company(
        "1000", "Tollgate Retail GmbH", "DE811111111", "DE", "Hafenstraße 12", "Hamburg", "20457"
    ),
    Company(
        "2000",
        "Tollgate Retail France SAS",
        "FR27811111111",
        "FR",
        "12 rue du Port",
        "Lyon",
        "69002",
    ),
    Company(
        "3000", "Tollgate Retail UK Ltd", "GB811111111", "GB", "1 Dock Road", "Leeds", "LS1 4AP"
    ),
)


@dataclass(frozen=True)
class ItemTemplate:
    """A kind of item a category sells, named in three languages."""

    names: dict[str, str]
    unit: str
    price_range: tuple[float, float]
    pack: int  # units per carton, used when a supplier bills per carton
    reduced_tax: bool = False


def _item(
    en: str, de: str, fr: str, unit: str, lo: float, hi: float, pack: int, reduced: bool = False
) -> ItemTemplate:
    return ItemTemplate({"en": en, "de": de, "fr": fr}, unit, (lo, hi), pack, reduced)


CATEGORIES: dict[str, list[ItemTemplate]] = {
    "food": [
        _item(
            "Salmon fillet, frozen",
            "Lachsfilet tiefgekühlt",
            "Filet de saumon surgelé",
            "KGM",
            12,
            26,
            10,
            True,
        ),
        _item(
            "Green peas, frozen",
            "Erbsen tiefgekühlt",
            "Petits pois surgelés",
            "KGM",
            1.5,
            3.5,
            10,
            True,
        ),
        _item(
            "Olive oil extra virgin 1 l",
            "Olivenöl nativ extra 1 l",
            "Huile d'olive vierge extra 1 l",
            "C62",
            5,
            11,
            12,
            True,
        ),
        _item("Basmati rice 5 kg", "Basmatireis 5 kg", "Riz basmati 5 kg", "C62", 8, 15, 4, True),
        _item(
            "Espresso beans 1 kg",
            "Espressobohnen 1 kg",
            "Café en grains 1 kg",
            "C62",
            11,
            24,
            6,
            True,
        ),
        _item(
            "Sparkling water 0.75 l",
            "Mineralwasser 0,75 l",
            "Eau gazeuse 0,75 l",
            "C62",
            0.4,
            1.1,
            12,
            True,
        ),
        _item(
            "Dark chocolate 100 g",
            "Zartbitterschokolade 100 g",
            "Chocolat noir 100 g",
            "C62",
            0.9,
            2.4,
            24,
            True,
        ),
        _item(
            "Tomatoes, peeled, tin",
            "Geschälte Tomaten, Dose",
            "Tomates pelées, boîte",
            "C62",
            0.6,
            1.6,
            24,
            True,
        ),
    ],
    "office": [
        _item(
            "A4 copy paper 80 g, box of 5 reams",
            "Kopierpapier A4 80 g, Karton 5 Pakete",
            "Papier A4 80 g, carton de 5 ramettes",
            "C62",
            18,
            32,
            4,
        ),
        _item(
            "Toner cartridge black",
            "Tonerkartusche schwarz",
            "Cartouche de toner noir",
            "C62",
            45,
            120,
            4,
        ),
        _item(
            "Ballpoint pen blue", "Kugelschreiber blau", "Stylo à bille bleu", "C62", 0.3, 1.2, 50
        ),
        _item(
            "Lever arch file 80 mm", "Ordner 80 mm", "Classeur à levier 80 mm", "C62", 1.8, 4.5, 10
        ),
        _item(
            "Sticky notes 76x76", "Haftnotizen 76x76", "Notes adhésives 76x76", "C62", 0.8, 2.6, 12
        ),
        _item("Desk lamp LED", "Schreibtischleuchte LED", "Lampe de bureau LED", "C62", 25, 70, 2),
    ],
    "packaging": [
        _item(
            "Cardboard box single wall 30x20x15",
            "Faltkarton einwellig 30x20x15",
            "Carton simple cannelure 30x20x15",
            "C62",
            0.4,
            1.1,
            25,
        ),
        _item("Packing tape 48 mm", "Packband 48 mm", "Ruban adhésif 48 mm", "C62", 1.2, 3.1, 36),
        _item(
            "Stretch film 500 mm", "Stretchfolie 500 mm", "Film étirable 500 mm", "C62", 9, 22, 6
        ),
        _item(
            "Pallet, EUR, used", "Europalette, gebraucht", "Palette EUR, occasion", "C62", 6, 14, 10
        ),
        _item(
            "Bubble wrap roll 50 m",
            "Luftpolsterfolie Rolle 50 m",
            "Papier bulle rouleau 50 m",
            "C62",
            12,
            28,
            4,
        ),
        _item(
            "Labels 100x150, roll",
            "Etiketten 100x150, Rolle",
            "Étiquettes 100x150, rouleau",
            "C62",
            7,
            16,
            10,
        ),
    ],
    "cleaning": [
        _item("Floor cleaner 10 l", "Bodenreiniger 10 l", "Nettoyant sol 10 l", "C62", 14, 35, 2),
        _item(
            "Paper towels, pack of 24",
            "Papierhandtücher, 24er Pack",
            "Essuie-mains, paquet de 24",
            "C62",
            9,
            21,
            4,
        ),
        _item(
            "Disposable gloves, box of 100",
            "Einweghandschuhe, Box à 100",
            "Gants jetables, boîte de 100",
            "C62",
            4,
            11,
            10,
        ),
        _item(
            "Waste bags 120 l, roll",
            "Müllsäcke 120 l, Rolle",
            "Sacs poubelle 120 l, rouleau",
            "C62",
            3,
            9,
            20,
        ),
    ],
    "beverages": [
        _item("Orange juice 1 l", "Orangensaft 1 l", "Jus d'orange 1 l", "C62", 0.9, 2.2, 12, True),
        _item("Apple juice 1 l", "Apfelsaft 1 l", "Jus de pomme 1 l", "C62", 0.8, 1.9, 12, True),
        _item("Lager beer 0.5 l", "Lagerbier 0,5 l", "Bière blonde 0,5 l", "C62", 0.7, 1.6, 24),
        _item("Red wine 0.75 l", "Rotwein 0,75 l", "Vin rouge 0,75 l", "C62", 3.5, 12, 6),
    ],
    "services": [
        _item(
            "Store cleaning service",
            "Unterhaltsreinigung Filiale",
            "Nettoyage du magasin",
            "HUR",
            24,
            42,
            1,
        ),
        _item("IT support", "IT-Support", "Support informatique", "HUR", 65, 130, 1),
        _item(
            "Forklift maintenance",
            "Wartung Gabelstapler",
            "Maintenance chariot élévateur",
            "HUR",
            55,
            95,
            1,
        ),
    ],
}


@dataclass(frozen=True)
class Item:
    """One catalogue item of a supplier, with its contract price and a possible price change."""

    item_id: str
    description: str
    unit_code: str
    price: Decimal
    pack: int
    tax_rate: Decimal
    category: str
    new_price: Decimal | None = None
    price_change: date | None = None

    def price_on(self, day: date) -> Decimal:
        """The contract price valid on `day`."""
        if (
            self.new_price is not None
            and self.price_change is not None
            and day >= self.price_change
        ):
            return self.new_price
        return self.price


@dataclass
class Supplier:
    """A supplier of the world and its latent traits (which drive delays and exceptions)."""

    ref: str
    name: str
    country: Country
    vat_id: str
    iban: str
    street: str
    city: str
    postal_code: str
    category: str
    weight: float
    layout: str
    number_style: int
    facturx: bool
    responsiveness: float  # > 1: slow to answer queries, so its cases take longer
    items: list[Item] = field(default_factory=list)
    blocked: bool = False
    old_iban: str | None = None  # account used before `bank_change`
    bank_change: date | None = None

    @property
    def language(self) -> str:
        """The language its documents are written in."""
        return self.country.language

    def iban_on(self, day: date) -> str:
        """The account the supplier asks to be paid to on `day`."""
        if self.old_iban is not None and self.bank_change is not None and day < self.bank_change:
            return self.old_iban
        return self.iban


# Each supplier prints its PDFs in one layout of its language (see training.synth.layouts).
LAYOUTS_BY_LANGUAGE = {
    language: tuple(sorted(name for name, layout in LAYOUTS.items() if layout.language == language))
    for language in ("en", "de", "fr")
}


def _money(value: float) -> Decimal:
    return Decimal(str(value)).quantize(CENT, ROUND_HALF_UP)


LANGUAGES = ("en", "de", "fr")


def _country(rng: random.Random, languages: tuple[str, ...]) -> Country:
    pairs = [(c, w) for c, w in COUNTRY_MIX if COUNTRIES[c].language in languages]
    return COUNTRIES[rng.choices([p[0] for p in pairs], weights=[p[1] for p in pairs])[0]]


def _fakers(seed: int) -> dict[str, Faker]:
    fakers = {}
    for country in COUNTRIES.values():
        fake = Faker(country.locale)
        fake.seed_instance(seed)
        fakers[country.code] = fake
    return fakers


def _company_name(fake: Faker, country: Country, rng: random.Random) -> str:
    name = fake.last_name()
    second = fake.last_name()
    style = rng.random()
    base = f"{name} & {second}" if style < 0.3 else name
    if country.language == "de" and style > 0.6:
        base = f"{name} {rng.choice(['Handel', 'Logistik', 'Vertrieb', 'Großhandel', 'Service'])}"
    elif country.language == "fr" and style > 0.6:
        base = f"{rng.choice(['Établissements', 'Distribution', 'Groupe'])} {name}"
    elif style > 0.6:
        base = f"{name} {rng.choice(['Trading', 'Supplies', 'Wholesale', 'Distribution'])}"
    return f"{base} {rng.choice(country.legal_forms)}"


def _vat_id(country: Country, rng: random.Random) -> str:
    digits = "".join(str(rng.randrange(10)) for _ in range(9))
    if country.code == "AT":
        return f"ATU{digits[:8]}"
    if country.code == "FR":
        return f"FR{rng.randrange(10, 100)}{digits}"
    if country.code == "NL":
        return f"NL{digits}B{rng.randrange(1, 100):02d}"
    return f"{country.code}{digits}"


def make_suppliers(
    count: int,
    seed: int,
    start: date,
    end: date,
    rng: random.Random,
    languages: tuple[str, ...] = LANGUAGES,
) -> list[Supplier]:
    """`count` suppliers with Pareto volumes, a few blocked and a few changing bank details."""
    fakers = _fakers(seed)
    suppliers: list[Supplier] = []
    names: set[str] = set()
    period = (end - start).days
    for index in range(count):
        country = _country(rng, languages)
        fake = fakers[country.code]
        name = _company_name(fake, country, rng)
        while name in names:
            name = _company_name(fake, country, rng)
        names.add(name)
        category = rng.choices(list(CATEGORIES), weights=[30, 20, 20, 10, 12, 8])[0]
        street = fake.street_address().split("\n")[0]
        supplier = Supplier(
            ref=f"S{index + 1:04d}",
            name=name,
            country=country,
            vat_id=_vat_id(country, rng),
            iban=fake.iban(),
            street=street,
            city=fake.city(),
            postal_code=fake.postcode(),
            category=category,
            # Zipf with exponent 1.1 over a random rank: volume is unrelated to the ref.
            weight=1.0 / (index + 1) ** 1.1,
            layout=rng.choice(LAYOUTS_BY_LANGUAGE[country.language]),
            number_style=rng.randrange(6),
            facturx=country.code in ("DE", "FR", "AT") and rng.random() < 0.35,
            responsiveness=rng.lognormvariate(0, 0.45),
        )
        supplier.items = _catalogue(supplier, rng, start, period)
        if rng.random() < 0.04 and index > 3:
            supplier.old_iban = supplier.iban
            supplier.iban = fake.iban()
            supplier.bank_change = start + timedelta(days=rng.randrange(period // 4, period))
        suppliers.append(supplier)
    # Shuffle ranks so supplier S0001 is not always the largest.
    weights = [s.weight for s in suppliers]
    rng.shuffle(weights)
    for supplier, weight in zip(suppliers, weights, strict=True):
        supplier.weight = weight
    for supplier in rng.sample(suppliers[4:], k=max(1, count // 60)):
        supplier.blocked = True
    return suppliers


def _catalogue(supplier: Supplier, rng: random.Random, start: date, period: int) -> list[Item]:
    templates = CATEGORIES[supplier.category]
    chosen = rng.sample(templates, k=min(len(templates), rng.randint(2, len(templates))))
    items = []
    for number, template in enumerate(chosen, start=1):
        price = _money(rng.uniform(*template.price_range))
        rate = (
            supplier.country.reduced_rate
            if template.reduced_tax
            else supplier.country.standard_rate
        )
        item = Item(
            item_id=f"{supplier.ref[1:]}-{number:03d}",
            description=template.names[supplier.language],
            unit_code=template.unit,
            price=price,
            pack=template.pack,
            tax_rate=rate,
            category=supplier.category,
        )
        if rng.random() < 0.25:
            # Contract price changes during the period: the PO carries the price of its date.
            change = start + timedelta(days=rng.randrange(period // 5, period))
            new_price = _money(float(price) * rng.uniform(1.02, 1.09))
            item = Item(**{**item.__dict__, "new_price": new_price, "price_change": change})
        items.append(item)
    return items


def unknown_supplier(
    seed: int, rng: random.Random, languages: tuple[str, ...] = LANGUAGES
) -> Supplier:
    """A sender that is not in master data (a new supplier nobody on-boarded)."""
    country = _country(rng, languages)
    fake = Faker(country.locale)
    fake.seed_instance(seed)
    supplier = Supplier(
        ref="",
        name=_company_name(fake, country, rng),
        country=country,
        vat_id=_vat_id(country, rng),
        iban=fake.iban(),
        street=fake.street_address().split("\n")[0],
        city=fake.city(),
        postal_code=fake.postcode(),
        category="services",
        weight=0.0,
        layout=rng.choice(LAYOUTS_BY_LANGUAGE[country.language]),
        number_style=rng.randrange(6),
        facturx=False,
        responsiveness=rng.lognormvariate(0.3, 0.4),
    )
    template = rng.choice(CATEGORIES["services"])
    supplier.items = [
        Item(
            item_id=f"X-{rng.randrange(1000, 9999)}",
            description=template.names[country.language],
            unit_code=template.unit,
            price=_money(rng.uniform(*template.price_range)),
            pack=1,
            tax_rate=country.standard_rate,
            category="services",
        )
    ]
    return supplier


def fresh_iban(seed: int) -> str:
    """A valid IBAN that belongs to nobody in the world (a fraudster's, or a new bank's)."""
    fake = Faker("de_DE")
    fake.seed_instance(seed)
    return str(fake.iban())

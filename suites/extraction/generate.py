"""Deterministic generator of the extraction suite: business records in free text -> JSON fields.

Run `python suites/extraction/generate.py` to rewrite train.jsonl (chat messages, for training),
dev.jsonl and test.jsonl (id, text, answer, for scoring) and train_prefs.jsonl (preference pairs for
DPO/ORPO: the train rows' prompts, the correct JSON chosen, a realistic mistake rejected). Same seed,
same bytes.
"""

from __future__ import annotations

import json
import random
from datetime import date, timedelta
from pathlib import Path

SYSTEM = "Extract the fields of the business record as one JSON object. Reply with JSON only."
SIZES = {"train": 2000, "dev": 200, "test": 200}
SEED = 20261123

COMPANIES = [
    "Acme Corp", "Globex Ltd", "Initech GmbH", "Umbrella Supplies", "Stark Industrial", "Wayne Logistics",
    "Hooli Systems", "Vandelay Imports", "Soylent Foods", "Tyrell Components", "Cyberdyne Parts",
    "Wonka Confections", "Nakatomi Trading", "Oscorp Labs", "Pied Piper Inc", "Aperture Science",
    "Blue Sun Retail", "Monarch Paper", "Sterling Cooper", "Dunder Mifflin", "Massive Dynamic",
    "Gringotts Office", "Prestige Worldwide", "Bluth Company", "Krusty Kitchens", "Wernham Hogg",
]
PRODUCTS = [
    "steel brackets", "A4 copy paper", "LED panels", "ergonomic chairs", "USB-C cables", "printer toner",
    "safety gloves", "packing tape", "laptop stands", "coffee beans", "hydraulic hoses", "solar inverters",
    "barcode scanners", "oak desks", "water filters", "thermal labels", "wireless mice", "server racks",
]
CARRIERS = ["DHL", "UPS", "FedEx", "DPD", "GLS", "TNT"]
CITIES = ["Lyon", "Hamburg", "Rotterdam", "Milan", "Austin", "Osaka", "Toronto", "Leeds", "Porto", "Gdansk", "Denver", "Lille"]
CURRENCIES = {"EUR": "€", "USD": "$", "GBP": "£"}
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"]
FILLER = [
    "Please retain this document for your records.", "Thank you for your business.",
    "Questions? Contact our accounts team.", "This message was generated automatically.",
    "Kind regards, the operations desk.", "", "", "",
]


def fmt_date(d: date, rng: random.Random) -> str:
    style = rng.randrange(4)
    if style == 0:
        return d.isoformat()
    if style == 1:
        return f"{MONTHS[d.month - 1]} {d.day}, {d.year}"
    if style == 2:
        return f"{d.day} {MONTHS[d.month - 1][:3]} {d.year}"
    return f"{d.day:02d}/{d.month:02d}/{d.year}"


def fmt_amount(amount: float, currency: str, rng: random.Random) -> str:
    style = rng.randrange(3)
    if style == 0:
        return f"{CURRENCIES[currency]}{amount:,.2f}"
    if style == 1:
        return f"{amount:.2f} {currency}"
    return f"{currency} {amount:,.2f}"


def invoice(rng: random.Random, d: date) -> tuple[str, dict]:
    fields = {
        "type": "invoice",
        "number": f"INV-{rng.randrange(10000, 99999)}",
        "date": d.isoformat(),
        "vendor": rng.choice(COMPANIES),
        "total": round(rng.uniform(20, 20000), 2),
        "currency": rng.choice(list(CURRENCIES)),
    }
    amount = fmt_amount(fields["total"], fields["currency"], rng)
    when = fmt_date(d, rng)
    text = rng.choice([
        f"Invoice {fields['number']} from {fields['vendor']}, dated {when}. Amount due: {amount}.",
        f"{fields['vendor']} has issued invoice no. {fields['number']} on {when} for a total of {amount}.",
        f"Billing notice. Vendor: {fields['vendor']}. Invoice #: {fields['number']}. Date: {when}. Total: {amount}.",
        f"Please pay {amount} to {fields['vendor']} (invoice {fields['number']}, issued {when}).",
    ])
    return text, fields


def order(rng: random.Random, d: date) -> tuple[str, dict]:
    fields = {
        "type": "order",
        "number": f"PO-{rng.randrange(10000, 99999)}",
        "date": d.isoformat(),
        "customer": rng.choice(COMPANIES),
        "product": rng.choice(PRODUCTS),
        "quantity": rng.randrange(1, 500),
    }
    when = fmt_date(d, rng)
    q, p, c, n = fields["quantity"], fields["product"], fields["customer"], fields["number"]
    text = rng.choice([
        f"Purchase order {n}: {c} orders {q} units of {p}, placed on {when}.",
        f"On {when}, {c} placed order {n} for {q} x {p}.",
        f"Order confirmation. Customer: {c}. PO number {n}. Item: {p}, qty {q}. Order date {when}.",
        f"We confirm receipt of your order {n} dated {when}: {q} {p} for {c}.",
    ])
    return text, fields


def shipment(rng: random.Random, d: date) -> tuple[str, dict]:
    fields = {
        "type": "shipment",
        "number": f"TRK-{rng.randrange(100000, 999999)}",
        "date": d.isoformat(),
        "carrier": rng.choice(CARRIERS),
        "destination": rng.choice(CITIES),
        "packages": rng.randrange(1, 40),
    }
    when = fmt_date(d, rng)
    k, car, dst, n = fields["packages"], fields["carrier"], fields["destination"], fields["number"]
    text = rng.choice([
        f"Shipping notice: {k} packages left our warehouse on {when} with {car}, tracking {n}, bound for {dst}.",
        f"Your shipment {n} ({k} parcels) was handed to {car} on {when}. Destination: {dst}.",
        f"Dispatch advice. Carrier {car}. Tracking number {n}. Shipped {when} to {dst}. Packages: {k}.",
        f"{car} picked up {k} boxes on {when} for delivery to {dst} under tracking number {n}.",
    ])
    return text, fields


def record(rng: random.Random) -> tuple[str, str]:
    d = date(2023, 1, 1) + timedelta(days=rng.randrange(730))
    text, fields = rng.choice([invoice, order, shipment])(rng, d)
    filler = rng.choice(FILLER)
    text = f"{text} {filler}".strip() if rng.random() < 0.5 else f"{filler} {text}".strip()
    return text, json.dumps(fields)


def mistake(answer: str, text: str, rng: random.Random) -> str:
    """A wrong answer a model plausibly gives: a field missing, a value copied from the wrong part of
    the text, the date as written instead of ISO, or malformed JSON."""
    fields = json.loads(answer)
    kind = rng.randrange(4)
    if kind == 0:
        del fields[rng.choice([k for k in fields if k != "type"])]
    elif kind == 1:  # two fields' values swapped: each copied from where the other one is in the text
        a, b = rng.sample([k for k in fields if k != "type"], 2)
        fields[a], fields[b] = fields[b], fields[a]
    elif kind == 2:
        d = date.fromisoformat(fields["date"])
        written = [f"{MONTHS[d.month - 1]} {d.day}, {d.year}", f"{d.day} {MONTHS[d.month - 1][:3]} {d.year}", f"{d.day:02d}/{d.month:02d}/{d.year}"]
        fields["date"] = next((w for w in written if w in text), rng.choice(written))
    else:
        broken = json.dumps(fields)
        return rng.choice([broken[:-1], broken.replace('"', "'"), broken.replace(", ", " ", 1)])
    return json.dumps(fields)


def preference_pairs(rows: list[dict], seed: int) -> list[dict]:
    """One pair per training row, in TRL's conversational preference format."""
    rng = random.Random(seed)
    pairs = []
    for row in rows:
        *prompt, answer = row["messages"]
        rejected = mistake(answer["content"], prompt[-1]["content"], rng)
        pairs.append({"prompt": prompt, "chosen": [answer], "rejected": [{"role": "assistant", "content": rejected}]})
    return pairs


def main(out: Path = Path(__file__).parent) -> None:
    rng = random.Random(SEED)
    seen: set[str] = set()
    for split, size in SIZES.items():
        rows = []
        while len(rows) < size:
            text, answer = record(rng)
            if text in seen:
                continue
            seen.add(text)
            if split == "train":
                rows.append({"messages": [
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": text},
                    {"role": "assistant", "content": answer},
                ]})
            else:
                rows.append({"id": f"{split}-{len(rows):04d}", "text": text, "answer": answer})
        with open(out / f"{split}.jsonl", "w") as fh:
            fh.writelines(json.dumps(row) + "\n" for row in rows)
        if split == "train":  # a generator of its own: the other splits keep their bytes
            with open(out / "train_prefs.jsonl", "w") as fh:
                fh.writelines(json.dumps(pair) + "\n" for pair in preference_pairs(rows, SEED + 1))


if __name__ == "__main__":
    main()

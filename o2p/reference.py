"""Reference data from the CRM / catalogue (rulebook §2), validated before anything touches money.

Every problem is reported as `file:row: field: reason` (row 1 is the header,
so the first data row is row 2, as a spreadsheet shows it).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from o2p.config import parse_rate
from o2p.errors import InputError
from o2p.timeutil import parse_rfc3339, to_us

PROMOTER_COLUMNS = [
    "promoter_id", "upline_id", "tier", "buyer_id", "payee_openid", "payee_name",
    "joined_at", "suspended_at",
]
PRODUCT_COLUMNS = ["sku_id", "product_id", "brand", "category"]
RULE_COLUMNS = ["rule_id", "scope", "scope_value", "rate", "effective_from", "effective_to"]
SCOPES = ("sku", "product", "brand", "category", "default")


@dataclass(frozen=True)
class Promoter:
    promoter_id: str
    upline_id: str | None
    tier: str
    buyer_id: str
    payee_openid: str | None
    payee_name: str
    joined_at_us: int
    suspended_at_us: int | None


@dataclass(frozen=True)
class Product:
    sku_id: str
    product_id: str
    brand: str
    category: str


@dataclass(frozen=True)
class Rule:
    rule_id: str
    scope: str
    scope_value: str | None
    rate: Decimal
    effective_from_us: int
    effective_to_us: int | None


@dataclass(frozen=True)
class Reference:
    promoters: dict[str, Promoter]
    products: dict[str, Product]
    rules: list[Rule]
    directory: Path


class _Problems:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, msg: str) -> None:
        self.items.append(f"{where}: {msg}")

    def raise_if_any(self) -> None:
        if self.items:
            shown = self.items[:20]
            more = f"\n  … and {len(self.items) - 20} more" if len(self.items) > 20 else ""
            raise InputError("invalid reference data:\n  " + "\n  ".join(shown) + more)


def _read(path: Path, columns: list[str], problems: _Problems) -> list[tuple[int, dict[str, str]]]:
    if not path.is_file():
        problems.add(str(path), "file not found")
        return []
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        missing = [c for c in columns if c not in header]
        extra = [c for c in header if c not in columns]
        if missing:
            problems.add(f"{path}:1", f"missing column(s) {', '.join(missing)}")
            return []
        if extra:
            problems.add(f"{path}:1", f"unknown column(s) {', '.join(extra)}")
        rows = []
        for i, row in enumerate(reader, start=2):
            if None in row:
                problems.add(f"{path}:{i}", "more fields than the header has")
                continue
            rows.append((i, {k: (v or "").strip() for k, v in row.items()}))
        return rows


def _time(value: str, where: str, field: str, problems: _Problems, *, optional: bool) -> int | None:
    if not value:
        if not optional:
            problems.add(where, f"{field}: required")
        return None
    try:
        return to_us(parse_rfc3339(value))
    except ValueError as exc:
        problems.add(where, f"{field}: {exc}")
        return None


def _required(row: dict[str, str], fields: list[str], where: str, problems: _Problems) -> bool:
    ok = True
    for f in fields:
        if not row[f]:
            problems.add(where, f"{f}: required")
            ok = False
    return ok


def load_reference(directory: str | Path) -> Reference:
    directory = Path(directory)
    problems = _Problems()
    if not directory.is_dir():
        raise InputError(f"{directory}: reference_dir not found (it holds promoters.csv, products.csv, commission_rules.csv)")

    promoters: dict[str, Promoter] = {}
    ppath = directory / "promoters.csv"
    for i, row in _read(ppath, PROMOTER_COLUMNS, problems):
        where = f"{ppath}:{i}"
        if not _required(row, ["promoter_id", "buyer_id", "payee_name", "joined_at"], where, problems):
            continue
        if row["promoter_id"] in promoters:
            problems.add(where, f"promoter_id: duplicate {row['promoter_id']!r}")
            continue
        if row["upline_id"] == row["promoter_id"]:
            problems.add(where, "upline_id: a promoter cannot be their own upline")
            continue
        joined = _time(row["joined_at"], where, "joined_at", problems, optional=False)
        suspended = _time(row["suspended_at"], where, "suspended_at", problems, optional=True)
        promoters[row["promoter_id"]] = Promoter(
            promoter_id=row["promoter_id"],
            upline_id=row["upline_id"] or None,
            tier=row["tier"],
            buyer_id=row["buyer_id"],
            payee_openid=row["payee_openid"] or None,
            payee_name=row["payee_name"],
            joined_at_us=joined or 0,
            suspended_at_us=suspended,
        )
    # Upline cycles: a chain that returns to itself is a data error in the CRM.
    for pid in promoters:
        seen, cur = {pid}, promoters[pid].upline_id
        while cur is not None and cur in promoters:
            if cur in seen:
                problems.add(str(ppath), f"upline_id: cycle through promoter {pid!r}")
                break
            seen.add(cur)
            cur = promoters[cur].upline_id

    products: dict[str, Product] = {}
    spath = directory / "products.csv"
    for i, row in _read(spath, PRODUCT_COLUMNS, problems):
        where = f"{spath}:{i}"
        if not _required(row, PRODUCT_COLUMNS, where, problems):
            continue
        if row["sku_id"] in products:
            problems.add(where, f"sku_id: duplicate {row['sku_id']!r}")
            continue
        products[row["sku_id"]] = Product(**row)

    rules: list[Rule] = []
    rpath = directory / "commission_rules.csv"
    seen_keys: dict[tuple, int] = {}
    seen_ids: set[str] = set()
    for i, row in _read(rpath, RULE_COLUMNS, problems):
        where = f"{rpath}:{i}"
        if not _required(row, ["rule_id", "scope", "rate", "effective_from"], where, problems):
            continue
        if row["rule_id"] in seen_ids:
            problems.add(where, f"rule_id: duplicate {row['rule_id']!r}")
        seen_ids.add(row["rule_id"])
        if row["scope"] not in SCOPES:
            problems.add(where, f"scope: {row['scope']!r} is not one of {', '.join(SCOPES)}")
            continue
        if row["scope"] == "default" and row["scope_value"]:
            problems.add(where, "scope_value: must be empty for scope default")
            continue
        if row["scope"] != "default" and not row["scope_value"]:
            problems.add(where, f"scope_value: required for scope {row['scope']}")
            continue
        try:
            rate = parse_rate(row["rate"])
        except ValueError as exc:
            problems.add(where, f"rate: {exc}")
            continue
        start = _time(row["effective_from"], where, "effective_from", problems, optional=False)
        end = _time(row["effective_to"], where, "effective_to", problems, optional=True)
        if start is None:
            continue
        if end is not None and end <= start:
            problems.add(where, "effective_to: must be after effective_from")
            continue
        key = (row["scope"], row["scope_value"], start)
        if key in seen_keys:
            problems.add(
                where,
                f"effective_from: same scope, scope_value and effective_from as row {seen_keys[key]} "
                "(which rule applies would be ambiguous)",
            )
            continue
        seen_keys[key] = i
        rules.append(Rule(row["rule_id"], row["scope"], row["scope_value"] or None, rate, start, end))

    problems.raise_if_any()
    return Reference(promoters=promoters, products=products, rules=rules, directory=directory)

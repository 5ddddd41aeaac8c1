"""Reference data from the CRM / catalogue (rulebook §2), validated before anything touches money.

Every problem is reported as `file:row: field: reason` (row 1 is the header,
so the first data row is row 2, as a spreadsheet shows it).

Encodings (rulebook §2): the files are UTF-8, a BOM and CRLF line ends are fine. Each file is
read as bytes and decoded here, in this order:
1. 0 bytes: refused (an export that lost everything, not even a header).
2. A byte-order mark says the encoding: UTF-8 is read; UTF-16 / UTF-32 only when
   `reference_encoding` names that family (utf-16, utf-16-le, …), else refused.
3. NUL bytes never occur in UTF-8 text: laid out as in UTF-16 / UTF-32 without a BOM (every
   second or fourth byte zero) they are read as such only when `reference_encoding` names that
   family; anything else is refused naming the line of the first one.
4. Valid UTF-8 is read as UTF-8, whatever `reference_encoding` says (the config names the
   encoding of files that are not UTF-8; GBK text is practically never valid UTF-8, and a file
   re-saved as UTF-8 must not be misread as GBK once the CRM export is fixed).
5. Otherwise the file is decoded with `reference_encoding` when it names another encoding, else
   refused naming the line and byte offset of the first byte that is not UTF-8 and the encoding
   the file seems to be in (GB18030 when it reads as common simplified Chinese, else the guess of
   charset_normalizer), with the two ways to fix it.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from o2p.config import parse_rate, text_encoding
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


# Longest first: the UTF-32-LE mark begins with the UTF-16-LE one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
LOST_ROWS = "an export that lost its rows would silently stop every payout"


class _Unreadable(Exception):
    """The bytes of a reference file cannot be text in the configured encoding; the message is
    what follows `file: ` in the report."""


def _family(encoding: str) -> str:
    """utf-16-le -> utf-16: the byte order of a UTF-16 / UTF-32 file is the file's business."""
    for fam in ("utf-16", "utf-32"):
        if encoding.startswith(fam):
            return fam
    return encoding


def _fix(encoding: str) -> str:
    return (f"re-save it as UTF-8 (in Excel: Save As, \"CSV UTF-8 (Comma delimited)\"), or set "
            f"`reference_encoding: {encoding}` in the config")


def _nul_layout(data: bytes) -> str | None:
    """UTF-16 / UTF-32 without a BOM, from where the NUL bytes are: mostly-ASCII text (a CSV
    header, ids, timestamps) in UTF-16-LE has a zero in (nearly) every odd byte and (nearly)
    none in the even ones; UTF-32-LE has zeros in bytes 2 and 3 of every 4. None: no such layout."""
    def share(k: int, n: int) -> float:
        part = data[k::n]
        return part.count(0) / len(part) if part else 0.0

    if len(data) >= 8 and len(data) % 4 == 0:
        q = [share(k, 4) for k in range(4)]
        if q[3] == 1.0 and q[2] > 0.9 and q[0] < 0.5:
            return "utf-32-le"
        if q[0] == 1.0 and q[1] > 0.9 and q[3] < 0.5:
            return "utf-32-be"
    even, odd = share(0, 2), share(1, 2)
    if odd >= 0.3 and even < odd / 10:
        return "utf-16-le"
    if even >= 0.3 and odd < even / 10:
        return "utf-16-be"
    return None


def _seems(data: bytes) -> tuple[str, str]:
    """(what to call the encoding the bytes seem to be in, the reference_encoding that reads them).

    Excel on Chinese Windows saves CSV in GBK, so GB18030 (its superset) comes first: when the
    bytes decode as GB18030 and at least half of what is not ASCII is common simplified Chinese
    (a character of GB2312; names bring rarer ones), that is the answer. Shift-JIS, Big5 and
    Latin-1 bytes fail this; EUC-KR, EUC-JP and Cyrillic ones pass it (they share GB2312's byte
    ranges), a wrong guess whose first remedy, re-saving as UTF-8, is still right. Otherwise
    charset_normalizer guesses (it is unsure on short samples: on a few GBK names it says Korean
    cp949, hence GB18030 first, and "seems")."""
    try:
        text = data.decode("gb18030")[:20000]
    except UnicodeDecodeError:
        text = ""
    wide = [c for c in text if ord(c) > 0x7F and not c.isspace()]
    if wide and sum(_in_gb2312(c) for c in wide) >= 0.5 * len(wide):
        return "GB18030 (GBK), as Excel saves CSV on Chinese Windows", "gb18030"
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None or codecs.lookup(best.encoding).name in ("utf-8", "ascii"):
        return "an encoding that could not be recognised", "<its encoding>"
    name = codecs.lookup(best.encoding).name
    return f"{name.upper()} (charset_normalizer's guess, check it)", name


def _in_gb2312(c: str) -> bool:
    try:
        c.encode("gb2312")
    except UnicodeEncodeError:
        return False
    return True


def _decode(data: bytes, encoding: str) -> str:
    """The text of one reference file (the rules are in the module docstring); raises _Unreadable."""
    if not data:
        raise _Unreadable(f"empty file (0 bytes, not even a header): {LOST_ROWS}")
    wanted = text_encoding(encoding)

    def line(pos: int, codec: str = "utf-8") -> int:
        return data[:pos].decode(codec, errors="replace").count("\n") + 1

    def read_as(codec: str, start: int, label: str) -> str:
        try:
            return data[start:].decode(codec)
        except UnicodeDecodeError as exc:
            pos = start + exc.start
            where = f"byte 0x{data[pos]:02X} at line {line(pos, codec)} (byte offset {pos}) is not {label}"
        if _family(codec) in ("utf-16", "utf-32"):
            raise _Unreadable(f"{where}: the file is damaged or not in {codec}: {_fix('utf-8')}")
        what, enc = _seems(data)
        raise _Unreadable(f"{where}; the file seems to be in {what}: {_fix(enc)}")

    for bom, found in _BOMS:
        if data.startswith(bom):
            if found == "utf-8":
                return read_as("utf-8", len(bom), "UTF-8 (the file starts with a UTF-8 byte-order mark)")
            if _family(wanted) == _family(found):
                return read_as(found, len(bom), f"{found} (the file starts with its byte-order mark)")
            raise _Unreadable(
                f"the file is in {found.upper()} (it starts with its byte-order mark), not UTF-8: "
                f"{_fix(_family(found))}"
            )
    nul = data.find(b"\0")
    if nul >= 0:
        found = _nul_layout(data)
        if found is None:
            raise _Unreadable(
                f"NUL byte at line {line(nul)} (byte offset {nul}): the file is binary or in "
                "UTF-16; export it again as CSV UTF-8"
            )
        if _family(wanted) == _family(found):
            codec = found if wanted == _family(wanted) else wanted  # a byte order in the config wins
            return read_as(codec, 0, f"{codec} (reference_encoding, no byte-order mark)")
        raise _Unreadable(
            f"the file seems to be in {found.upper()} without a byte-order mark (NUL bytes "
            f"beside its ASCII characters), not UTF-8: {_fix(_family(found))}"
        )
    if wanted == "utf-8":
        return read_as("utf-8", 0, "UTF-8")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return read_as(wanted, 0, f"{wanted} (reference_encoding)")


# C0 controls but tab, LF and CR (which a CSV cell may hold), DEL and the C1 controls
CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _read(path: Path, columns: list[str], problems: _Problems,
          encoding: str | None = None) -> list[tuple[int, dict[str, str]]]:
    if not path.is_file():
        problems.add(str(path), "file not found")
        return []
    try:
        text = _decode(path.read_bytes(), encoding or "utf-8")
    except _Unreadable as exc:
        problems.add(str(path), str(exc))
        return []
    reader = csv.DictReader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
    header = reader.fieldnames or []
    missing = [c for c in columns if c not in header]
    extra = [c for c in header if c not in columns]
    if missing:
        problems.add(f"{path}:1", f"missing column(s) {', '.join(missing)}")
        return []
    if extra:
        problems.add(f"{path}:1", f"unknown column(s) {', '.join(extra)}")
    rows = []
    records = 0
    for i, row in enumerate(reader, start=2):
        records += 1
        if None in row:
            problems.add(f"{path}:{i}", "more fields than the header has")
            continue
        cells = {k: (v or "").strip() for k, v in row.items()}
        bad = [k for k, v in cells.items() if CONTROL.search(v)]
        if bad:   # a payee name with \x01 would reach payout files and workbooks that cannot hold it
            for k in bad:
                c = CONTROL.search(cells[k]).group()
                problems.add(f"{path}:{i}", f"{k}: control character U+{ord(c):04X} (a value for people holds none)")
            continue
        rows.append((i, cells))
    if not records:
        problems.add(str(path), f"has a header and no rows: {LOST_ROWS}")
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


def _upline_cycles(promoters: dict[str, Promoter], rows: dict[str, int]) -> list[list[str]]:
    """Each upline cycle once, as its promoters in upline order starting from the one earliest in
    the file; a promoter whose chain merely reaches a cycle (P4 -> P1 in P1 -> P2 -> P3 -> P1) is
    not in it. A walk from every promoter not yet done: meeting the current walk again is a cycle,
    meeting an earlier walk or a promoter without a (known) upline ends it."""
    done: set[str] = set()
    cycles = []
    for start in promoters:
        walk: list[str] = []
        on_walk: dict[str, int] = {}
        cur: str | None = start
        while cur is not None and cur in promoters and cur not in done:
            if cur in on_walk:
                cycle = walk[on_walk[cur]:]
                first = min(range(len(cycle)), key=lambda k: rows[cycle[k]])
                cycles.append(cycle[first:] + cycle[:first])
                break
            on_walk[cur] = len(walk)
            walk.append(cur)
            cur = promoters[cur].upline_id
        done.update(walk)
    return sorted(cycles, key=lambda c: rows[c[0]])


def load_reference(directory: str | Path, *, encoding: str | None) -> Reference:
    """Read and validate the three files of `directory`. `encoding` is the config's
    `reference_encoding` (None: UTF-8); it has no default so that no caller forgets the config's."""
    directory = Path(directory)
    problems = _Problems()
    try:
        encoding = text_encoding(encoding)
    except ValueError as exc:
        raise InputError(f"reference_encoding: {exc}") from None
    if not directory.is_dir():
        raise InputError(f"{directory}: reference_dir not found (it holds promoters.csv, products.csv, commission_rules.csv)")

    promoters: dict[str, Promoter] = {}
    promoter_rows: dict[str, int] = {}
    ppath = directory / "promoters.csv"
    for i, row in _read(ppath, PROMOTER_COLUMNS, problems, encoding):
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
        promoter_rows[row["promoter_id"]] = i
    for cycle in _upline_cycles(promoters, promoter_rows):
        chain = " → ".join([*cycle, cycle[0]])
        rows = ", ".join(f"{ppath.name}:{promoter_rows[p]}" for p in cycle)
        problems.add(
            f"{ppath}:{promoter_rows[cycle[0]]}",
            f"upline_id: upline cycle {chain} (rows {rows}); a chain of uplines must end at a "
            "promoter with no upline",
        )

    products: dict[str, Product] = {}
    spath = directory / "products.csv"
    for i, row in _read(spath, PRODUCT_COLUMNS, problems, encoding):
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
    for i, row in _read(rpath, RULE_COLUMNS, problems, encoding):
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

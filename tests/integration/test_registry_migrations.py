"""A registry made before Alembic upgrades in place (issue #12) on SQLite and on a real
PostgreSQL server: its released batch is neither lost nor altered and still verifies; the
upgraded schema is exactly the code's model (no drift), and a second open does nothing."""

import pytest
from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    insert,
)

from o2p import release
from o2p.config import load_config
from o2p.migrations import HEAD, current
from o2p.reference import Promoter
from o2p.registry import Registry, metadata
from o2p.settlement import settle
from o2p.timeutil import period_end_us
from tests.integration.test_registry import url  # noqa: F401 - the sqlite | postgresql fixture

pytestmark = pytest.mark.integration
PERIOD = "2026-10"


def _old_schema(with_ledger_totals: bool) -> MetaData:
    """A pinned copy of the registry's tables as the code before Alembic created them (and, without
    ledger_totals, as the code before that)."""
    m = MetaData()
    Table("batches", m, Column("period", String(7), primary_key=True),
          Column("batch_id", String(64), nullable=False, unique=True), Column("status", String(16), nullable=False),
          Column("folder", Text), Column("row_count", Integer), Column("gross_fen", BigInteger),
          Column("tax_fen", BigInteger), Column("net_fen", BigInteger), Column("config_hash", String(64)),
          Column("input_fingerprint", String(64)), Column("manifest_sha256", String(64)),
          Column("claimed_at", String(40)), Column("claimed_by", String(200)), Column("released_at", String(40)))
    Table("batch_files", m, Column("period", String(7), nullable=False), Column("name", String(64), nullable=False),
          Column("sha256", String(64), nullable=False), UniqueConstraint("period", "name"))
    Table("ledger_entries", m, Column("period", String(7), nullable=False, index=True),
          Column("promoter_id", String(64), nullable=False), Column("order_id", String(64), nullable=False),
          Column("line_id", String(64), nullable=False), Column("role", String(16), nullable=False),
          Column("entitled_fen", BigInteger, nullable=False), Column("previously_booked_fen", BigInteger, nullable=False),
          Column("movement_fen", BigInteger, nullable=False),
          UniqueConstraint("period", "promoter_id", "order_id", "line_id", "role"))
    if with_ledger_totals:
        Table("ledger_totals", m, Column("period", String(7), primary_key=True),
              Column("entries", BigInteger, nullable=False), Column("entitled_fen", BigInteger, nullable=False),
              Column("movement_fen", BigInteger, nullable=False))
    Table("balances", m, Column("period", String(7), nullable=False, index=True),
          Column("promoter_id", String(64), nullable=False), Column("carried_in_fen", BigInteger, nullable=False),
          Column("movement_fen", BigInteger, nullable=False), Column("balance_fen", BigInteger, nullable=False),
          Column("gross_fen", BigInteger, nullable=False), Column("tax_fen", BigInteger, nullable=False),
          Column("net_fen", BigInteger, nullable=False), Column("carried_out_fen", BigInteger, nullable=False),
          Column("carry_reason", String(32)), UniqueConstraint("period", "promoter_id"))
    return m


def _released_by_old_code(db_url, tmp_path, with_ledger_totals):
    """A batch released and recorded as the old code did (its tables, its rows), files on disk."""
    engine = create_engine(db_url)
    old = _old_schema(with_ledger_totals)
    old.create_all(engine)
    cfg = load_config(None, home=tmp_path / "home")
    promoters = {p: Promoter(p, None, "g", f"B{p}", f"o{p}", f"推客{p}", 0, None) for p in ("P1", "P2")}
    ents = [{"promoter_id": p, "order_id": f"O{p}", "line_id": "L1", "role": "direct", "entitled_fen": e,
             "net_fen": e * 10, "rate_e4": 1000, "click_event_id": "c", "attribution_reason": "last_click"}
            for p, e in (("P1", 5000), ("P2", 700))]
    s = settle(PERIOD, period_end_us(PERIOD), ents, {}, {}, promoters, {}, threshold_fen=1000, tax_rule="none")
    batch_id = f"{PERIOD}-old"
    files = release.render(cfg, batch_id, s, promoters)
    tot = release.totals(s)
    files["manifest.json"] = release.manifest(cfg, batch_id, PERIOD, files, tot, "fp", [])
    folder = cfg.payouts_path / PERIOD / batch_id
    release.write_folder(folder, files)
    with engine.begin() as c:
        c.execute(insert(old.tables["batches"]).values(
            period=PERIOD, batch_id=batch_id, status="released", folder=str(folder), row_count=tot["row_count"],
            gross_fen=tot["gross_fen"], tax_fen=tot["tax_fen"], net_fen=tot["net_fen"], config_hash=cfg.config_hash,
            input_fingerprint="fp", manifest_sha256=release.sha256_bytes(files["manifest.json"]),
            claimed_at="2026-11-01T00:00:00+00:00", claimed_by="pid 1 on old-host", released_at="2026-11-01T00:00:01+00:00"))
        c.execute(insert(old.tables["batch_files"]), [{"period": PERIOD, "name": n, "sha256": release.sha256_bytes(d)}
                                                      for n, d in files.items() if n != "manifest.json"])
        c.execute(insert(old.tables["ledger_entries"]), [
            {"period": PERIOD, **{k: getattr(r, k) for k in ("promoter_id", "order_id", "line_id", "role", "entitled_fen",
                                                             "previously_booked_fen", "movement_fen")}} for r in s.statement])
        c.execute(insert(old.tables["balances"]), [{"period": PERIOD, **dict(vars(b))} for b in s.balances])
    with engine.connect() as c:
        before = {t: sorted(map(tuple, c.execute(old.tables[t].select()).fetchall())) for t in old.tables}
    engine.dispose()
    return folder, before, old


@pytest.mark.parametrize("with_ledger_totals", [True, False], ids=["before-alembic", "before-ledger-totals"])
def test_an_old_registry_upgrades_in_place_and_its_batches_still_verify(url, tmp_path, with_ledger_totals):  # noqa: F811
    folder, before, old = _released_by_old_code(url, tmp_path, with_ledger_totals)
    reg = Registry(url)                                   # opening it upgrades it
    assert current(reg.engine) == HEAD
    with reg.engine.connect() as c:
        for t, rows in before.items():                    # nothing released was altered or lost
            cols = [col.name for col in old.tables[t].columns]
            got = sorted(tuple(r) for r in c.execute(metadata.tables[t].select().with_only_columns(
                *[metadata.tables[t].c[n] for n in cols])).fetchall())
            assert got == rows, t
    assert reg.batch(PERIOD)["released_by"] is None       # unknown for batches released before
    # its paid promoter has a transfer bill, so results for it can be reconciled
    [bill] = reg.bills(period=PERIOD).values()
    assert (bill["out_bill_no"], bill["promoter_id"], bill["net_fen"], bill["openid"]) == (
        release.out_bill_no(f"{PERIOD}-old", "P1"), "P1", 5000, None)
    assert release.verify(folder, reg) == []
    # the upgraded schema is the code's model, exactly
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with reg.engine.connect() as c:
        assert compare_metadata(MigrationContext.configure(c), metadata) == []
    reg.engine.dispose()
    again = Registry(url)                                 # at HEAD: nothing to do
    assert current(again.engine) == HEAD and release.verify(folder, again) == []
    again.engine.dispose()


def test_a_failing_upgrade_leaves_the_registry_as_it_was(url, tmp_path, monkeypatch):  # noqa: F811
    """One transaction, on SQLite too (whose driver would commit each CREATE on its own): a
    migration that fails half-way leaves no half-made table behind, and the next open succeeds."""
    import alembic.op
    from sqlalchemy import inspect

    folder, before, old = _released_by_old_code(url, tmp_path, True)

    def boom(*_a, **_k):
        raise RuntimeError("disk gone mid-migration")
    monkeypatch.setattr(alembic.op, "bulk_insert", boom)          # 0003's backfill of the old batch's bills
    with pytest.raises(RuntimeError, match="disk gone"):
        Registry(url)
    engine = create_engine(url)
    tables = set(inspect(engine).get_table_names())
    assert not tables & {"approvals", "actions", "transfer_bills", "transfer_results", "alembic_version"}, tables
    engine.dispose()
    monkeypatch.undo()
    reg = Registry(url)
    assert current(reg.engine) == HEAD and release.verify(folder, reg) == []
    reg.engine.dispose()

"""One realistic defect per stage: nothing is released, the exit code is 3, and the message names
the suite, the expectation and the failing rows.

A clean August (the golden world of test_golden.py) is landed and attributed once; each test
works on its own copy of that $O2P_HOME, injects its defect, and runs the real command in-process
(`o2p.cli.main`, which maps a failed gate to exit 3). Defects in data written by the pipeline are
injected by editing its files (the release re-validates whatever changed since its gate passed);
defects in the pipeline's own arithmetic by patching the function that computes it.
"""

import json
import shutil
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from o2p.cli import main
from o2p.config import load_config
from o2p.registry import Registry
from tests.integration.test_golden import attributed_august, land

pytestmark = pytest.mark.integration
PERIOD = "2026-08"


@pytest.fixture(scope="module")
def clean_home(tmp_path_factory, spark_cfg):
    """August landed and attributed: built once per session (test_golden.attributed_august, also
    used by its concurrent-release test); each test works on a copy of its home."""
    return attributed_august(tmp_path_factory)


@pytest.fixture
def home(clean_home, tmp_path):
    """A private copy of the clean home; returns (cfg, argv prefix)."""
    shutil.copytree(clean_home / "home", tmp_path / "home")
    cfg = load_config(clean_home / "o2p.yaml", home=tmp_path / "home")
    return cfg, ["--config", str(clean_home / "o2p.yaml"), "--home", str(tmp_path / "home")]


def release(argv, capsys) -> tuple[int, str]:
    capsys.readouterr()
    code = main([*argv, "payouts", "release", "--period", PERIOD])
    return code, capsys.readouterr().err


def assert_nothing_released(cfg) -> None:
    assert not (cfg.payouts_path / PERIOD).exists() or not any((cfg.payouts_path / PERIOD).iterdir())
    assert Registry(cfg.registry).batch(PERIOD) is None


def rewrite(path: Path, fn) -> None:
    table = pq.read_table(path)
    pq.write_table(fn(table), path)


def test_the_clean_world_releases_and_lists_every_gate(home, capsys):
    cfg, argv = home
    code, err = release(argv, capsys)
    assert code == 0, err
    folder = next((cfg.payouts_path / PERIOD).iterdir())
    gates = {g["suite"]: g["success"] for g in json.loads((folder / "manifest.json").read_text())["quality_gates"]}
    assert gates == {s: True for s in ("landing", "click_validity", "attribution", "commission", "settlement", "payout")}
    assert (cfg.home_path / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html").is_file()


def test_landing_a_kafka_record_twice(home, capsys):
    """A landed file copied beside itself (a capture bug, or a hand copy): every record twice."""
    cfg, argv = home
    day = cfg.landing_path / "orders" / "event_date=2026-08-03"
    original = next(day.glob("*.parquet"))
    shutil.copy(original, day / ("copy-" + original.name))
    capsys.readouterr()
    assert main([*argv, "run"]) == 3
    err = capsys.readouterr().err
    assert "gx_landing" in err and "landing_events: expect_compound_columns_to_be_unique" in err
    assert "o-OB3" in err                     # the failing rows, by event_id
    code, err = release(argv, capsys)
    assert code == 3 and "upstream quality gate(s) failed" in err and "landing" in err
    assert_nothing_released(cfg)


def test_dead_letters_captured_after_the_landing_gate_passed(home, capsys):
    """A burst of malformed messages on the day August was captured, after its landing gate had
    passed: no landed file changes, yet the share of that capture date is now over the ceiling,
    and the release judges it again. The same share under a raised ceiling releases."""
    import pyarrow as pa
    import pyarrow.dataset as pads

    from o2p.layout import SCHEMAS

    cfg, argv = home
    landed = pads.dataset(cfg.landing_path / "clicks", format="parquet", partitioning="hive").to_table(
        columns=["_captured_at_us"]).column("_captured_at_us").to_pylist()
    at = landed[0]
    day = pc.strftime(pa.array([at + 8 * 3600 * 10**6], pa.timestamp("us")), format="%Y-%m-%d")[0].as_py()
    n = 40                                   # well over 5 % of the ~200 messages landed that day
    rows = {"_topic": ["o2p.orders.v1"] * n, "_partition": [0] * n, "_offset": list(range(10_000, 10_000 + n)),
            "_captured_at_us": [at] * n, "capture_date": [day] * n, "key": [None] * n,
            "raw": [b"{not json %d" % i for i in range(n)], "reason": ["not valid UTF-8 JSON"] * n}
    schema = SCHEMAS["deadletters"]
    folder = cfg.landing_path / "deadletters" / f"capture_date={day}"
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({f.name: rows.get(f.name, [None] * n) for f in schema}, schema=schema),
                   folder / "o2p.orders.v1+0+00000000000000010000+00000000000000010039.parquet")
    code, err = release(argv, capsys)
    assert code == 3, err
    assert "upstream quality gate(s) failed" in err
    assert "landing_deadletters: expect_column_values_to_be_between(dead_share)" in err and day in err
    assert_nothing_released(cfg)
    # the ceiling is policy: raised above that day's share, the same data is released
    raised = cfg.home_path.parent / "raised.yaml"
    raised.write_text(Path(argv[1]).read_text().replace("quality:\n", 'quality:\n  max_deadletter_share: "0.50"\n'))
    capsys.readouterr()
    assert main(["--config", str(raised), *argv[2:], "payouts", "release", "--period", PERIOD]) == 0, \
        capsys.readouterr().err


def test_click_validity_output_missing_a_click(home, capsys):
    cfg, argv = home
    f = next((cfg.warehouse_path / "clicks_validated" / "event_date=2026-08-02").glob("*.parquet"))
    rewrite(f, lambda t: t.slice(1))
    code, err = release(argv, capsys)
    assert code == 3, err
    assert "click_validity: FAILED" in err and "expect_table_row_count_to_equal" in err
    assert_nothing_released(cfg)


def test_an_order_attributed_to_a_click_after_it(home, capsys):
    """OA1 (paid 08-01 12:00) pointed at c-OB1, another buyer's click of 08-02 09:00: a Spark
    defect, so its decision trace says the same (a trace that disagreed with the attribution
    would be caught earlier, by the dbt test assert_attribution_decisions_agree_with_orders)."""
    cfg, argv = home

    def corrupt(t, won=None):
        ids = t.column("click_event_id")
        wrong = pc.equal(t.column("order_id"), "OA1")
        if won is not None:   # the trace: only OA1's winning row
            wrong = pc.and_(wrong, pc.equal(t.column("outcome"), won))
        return t.set_column(t.schema.get_field_index("click_event_id"), "click_event_id", pc.if_else(wrong, "c-OB1", ids))
    rewrite(next((cfg.warehouse_path / "attribution" / "event_date=2026-08-01").glob("*.parquet")), corrupt)
    for f in (cfg.warehouse_path / "attribution_decisions" / "event_date=2026-08-01").glob("*.parquet"):
        rewrite(f, lambda t: corrupt(t, won="won"))
    code, err = release(argv, capsys)
    assert code == 3, err
    assert "attribution: FAILED" in err
    assert "expect_column_values_to_be_in_set(click_not_after_order)" in err and "o-OA1" in err
    assert "expect_column_values_to_be_in_set(click_of_buyer)" in err
    assert_nothing_released(cfg)


def test_a_commission_above_its_net(home, capsys, monkeypatch):
    """A bad override rate reaching the SQL (2.0 instead of 0.02)."""
    from pipelines.assets.commission import assets as commission

    real = commission.dbt_vars
    monkeypatch.setattr(commission, "dbt_vars", lambda cfg, key: {**real(cfg, key), "override_rate_e4": 20000})
    cfg, argv = home
    code, err = release(argv, capsys)
    assert code == 3, err
    # the dbt test of the commission model catches it first, within dbt build; the GX commission
    # suite would fail too (test_expectations.py shows it on the same defect)
    assert "dbt test(s) failed" in err and "assert_entitlement_within_net" in err
    assert "4 failing rows, stored in" in err and "role=override" in err    # and a sample of them
    assert_nothing_released(cfg)


def test_a_ledger_that_does_not_reconcile(home, capsys, monkeypatch):
    """Settlement loses a fen: PC carries out 998 of a 999 balance."""
    from pipelines.assets.settlement import assets as settlement

    real = settlement.balances

    def lossy(*a, **kw):
        out = real(*a, **kw)
        for b in out:
            if b.promoter_id == "PC":
                b.carried_out_fen -= 1
        return out
    monkeypatch.setattr(settlement, "balances", lossy)
    cfg, argv = home
    code, err = release(argv, capsys)
    assert code == 3, err
    assert "settlement: FAILED" in err and "expect_column_values_to_be_in_set(reconciles)" in err and "PC" in err
    assert_nothing_released(cfg)


def test_a_payout_row_whose_tax_does_not_add_up(home, capsys, monkeypatch):
    """The settlement read back for the files has PBIG's net one fen above gross − tax."""
    from pipelines.assets.payouts import assets as payouts

    real = payouts.load_settlement

    def off_by_one(cfg, period):
        s = real(cfg, period)
        for b in s.balances:
            if b.promoter_id == "PBIG":
                b.net_fen += 1
        return s
    monkeypatch.setattr(payouts, "load_settlement", off_by_one)
    cfg, argv = home
    code, err = release(argv, capsys)
    assert code == 3, err
    assert "payout: FAILED" in err and "expect_column_values_to_be_in_set(net_is_gross_minus_tax)" in err
    assert "PBIG" in err
    assert_nothing_released(cfg)


def test_an_order_landed_after_the_last_attribution_run(home, capsys):
    """Captured, never attributed: settling it now would treat it as organic."""
    from tests.integration.test_golden import bought

    cfg, argv = home
    land(cfg, bought("OLATE", "2026-08-12", "PA", "ULATE", 10000))
    code, err = release(argv, capsys)
    assert code == 3, err
    assert "attribution: FAILED" in err and "expect_table_row_count_to_equal" in err
    assert_nothing_released(cfg)


def test_a_release_reuses_the_runs_build_only_while_nothing_it_read_changed(home, capsys, monkeypatch):
    """A commission run built and gated August; a landed file then changed (its mtime: a rewrite). A
    release that did not build must not take that build's gate for the new files: its settlement
    step refuses, says why and releases nothing; the release the command chooses builds again."""
    import os

    from pipelines import execute
    from pipelines.execute import execute as run_job
    from pipelines.jobs import reusing_commission

    cfg, argv = home
    run_job(cfg, "commission_job", partition=PERIOD)   # what `o2p run` adds to the attributed home
    landed = next((cfg.landing_path / "orders" / "event_date=2026-08-03").glob("*.parquet"))
    st = landed.stat()
    os.utime(landed, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))

    def always_reuse(cfg, job, period):   # as if the command had decided before the file changed
        keys, checks = reusing_commission(job.name)
        return job.get_subset(asset_selection=frozenset(keys), asset_check_selection=frozenset(checks))
    monkeypatch.setattr(execute, "_reusing_commission", always_reuse)
    code, err = release(argv, capsys)
    assert code == 1, err
    assert "this run did not build the commission models, and no build of them can be reused: what dbt reads " \
           "(landed or warehouse files, reference data, config or dbt code) changed since" in err
    assert_nothing_released(cfg)

    monkeypatch.undo()
    code, err = release(argv, capsys)
    assert code == 0, err
    assert "are reused" not in err
    gates = [json.loads(f.read_text()) for f in (cfg.home_path / "quality" / PERIOD).glob("*/commission.json")]
    assert gates and not any("reused_from_run" in g for g in gates), gates

"""The storage layout has one home (o2p/layout.py): dbt's source files are generated from it, and
the dbt project keeps the layers of dbt Labs' guide (staging reads only its source, marts never
read a source, every model has a column test)."""

import re
from pathlib import Path

import yaml

from o2p import layout

MODELS = layout.DBT_PROJECT / "models"


def test_the_committed_sources_files_are_what_the_layout_generates():
    for source in layout.SOURCES:
        path = layout.sources_path(source)
        assert path.read_text(encoding="utf-8") == layout.sources_yml(source), (
            f"{path} differs from o2p/layout.py:SOURCES: run python -m o2p.layout --sources")
    generated = {layout.sources_path(s) for s in layout.SOURCES}
    assert set(MODELS.rglob("*sources.yml")) == generated, "every source file is generated"


def test_each_source_table_names_its_asset_and_a_folder_of_the_layout():
    for source, spec in layout.SOURCES.items():
        for name, table in spec["tables"].items():
            assert table["asset_key"] and table["columns"], (source, name)
    assert layout.SOURCES[layout.WAREHOUSE]["tables"]["order_attribution"]["identifier"] == layout.ORDER_ATTRIBUTION
    assert set(layout.SOURCES[layout.REFERENCE]["tables"]) == set(layout.REFERENCE_TABLES)


def _calls(sql: str, fn: str) -> list[str]:
    return re.findall(fn + r"\(\s*'([^']+)'(?:\s*,\s*'([^']+)')?", sql)


def test_staging_models_read_only_their_own_source_and_are_named_after_it():
    for path in (MODELS / "staging").rglob("*.sql"):
        source = path.parent.name
        sql = path.read_text()
        assert path.stem.startswith(f"stg_{source}__"), path
        assert not _calls(sql, "ref"), f"{path.name} reads another model"
        assert [s for s, _ in _calls(sql, "source")] == [source], path


def test_no_model_outside_staging_reads_a_source():
    for layer in ("intermediate", "marts"):
        for path in (MODELS / layer).rglob("*.sql"):
            assert "source(" not in path.read_text(), path


def test_every_model_has_a_column_test():
    """A test of its columns: on a column, or of the model naming columns (one_row_per, no_nulls)."""
    tested = set()
    for yml in MODELS.rglob("_*__*.yml"):   # _<folder>__models.yml, and a mart's own file beside it
        for model in yaml.safe_load(yml.read_text()).get("models", []):
            if any(c.get("data_tests") for c in model.get("columns", [])) or model.get("data_tests"):
                tested.add(model["name"])
    assert {p.stem for p in MODELS.rglob("*.sql")} <= tested


def test_a_macro_file_is_named_as_its_macro():
    for path in (layout.DBT_PROJECT / "macros").glob("*.sql"):
        assert re.findall(r"macro\s+(\w+)\(", path.read_text()) == [path.stem], path


def test_the_dbt_project_holds_no_var_defaults():
    """Every var comes from the config (pipelines/assets/commission/assets.py:dbt_vars)."""
    project = yaml.safe_load((layout.DBT_PROJECT / "dbt_project.yml").read_text())
    assert "vars" not in project


def test_paths_under_a_home():
    home = Path("/h")
    assert layout.duckdb_file(home) == Path("/h/warehouse/o2p.duckdb")
    assert layout.event_date_dir(layout.landing_table(layout.landing_root(home), "orders"), "2026-11-01") == \
        Path("/h/landing/orders/event_date=2026-11-01")
    assert layout.conflicts_file(layout.warehouse_root(home)) == \
        Path("/h/warehouse/event_id_conflicts/current/conflicts.parquet")
    assert layout.batch_folder(layout.payouts_root(home), "2026-11", "b1") == Path("/h/payouts/2026-11/b1")

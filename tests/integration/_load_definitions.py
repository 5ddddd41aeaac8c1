"""Run by test_definitions in a fresh process: load the definitions, say whether Spark started."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from dagster import AssetKey  # noqa: E402

from pipelines.definitions import defs  # noqa: E402
from pipelines.lib import spark  # noqa: E402

graph = defs.resolve_asset_graph()
mapping = graph.get(AssetKey(["attribution", "order_attribution"])).partition_mappings[
    AssetKey(["attribution", "clicks_validated"])]
print(f"lookback mapping: {mapping.start_offset}")
print(f"spark session: {spark._session}")   # last: test_definitions reads the final line

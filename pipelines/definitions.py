"""The one entry point of the Dagster code location (workspace.yaml loads it).

Loading it never starts a JVM, connects to Kafka or opens the warehouse.
"""

from __future__ import annotations

import os

from dagster import AssetSelection, Definitions, define_asset_job, in_process_executor
from dagster_dbt import DbtCliResource

from pipelines.assets.attribution.assets import clicks_validated, order_attribution
from pipelines.assets.commission.assets import commission_dbt, dbt_project, gx_commission
from pipelines.assets.landing.assets import (
    capture_health_sensor,
    landing_sensor,
    landing_specs,
    reference_data,
)
from pipelines.assets.payouts.assets import payout_batch
from pipelines.assets.settlement.assets import promoter_balances
from pipelines.lib.alerts import alert_on_failure
from pipelines.lib.partitions import daily, monthly
from pipelines.resources import O2PConfig

attribution_job = define_asset_job(
    "attribution_job",
    selection=AssetSelection.assets(clicks_validated, order_attribution),
    partitions_def=daily,
    description="Click validity and attribution for a range of days (one Spark job).",
)
reference_job = define_asset_job(
    "reference_job",
    selection=AssetSelection.assets(reference_data),
    description="Validate the reference CSVs and type them for dbt.",
)
commission_job = define_asset_job(
    "commission_job",
    selection=AssetSelection.assets(commission_dbt),
    partitions_def=monthly,
    description="The dbt commission models of one period, with their dbt tests and the GX commission gate.",
)
release_job = define_asset_job(
    "release_job",
    selection=AssetSelection.assets(commission_dbt, promoter_balances, payout_batch),
    partitions_def=monthly,
    executor_def=in_process_executor,
    description="Commission, settlement and the payout release of one period, gated by every check.",
)

defs = Definitions(
    assets=[*landing_specs, reference_data, clicks_validated, order_attribution, commission_dbt,
            promoter_balances, payout_batch],
    asset_checks=[gx_commission],
    jobs=[reference_job, attribution_job, commission_job, release_job],
    sensors=[landing_sensor, capture_health_sensor, alert_on_failure],
    resources={
        "o2p": O2PConfig(config_path=os.environ.get("O2P_CONFIG"), home=os.environ.get("O2P_HOME")),
        "dbt": DbtCliResource(project_dir=dbt_project, profiles_dir=str(dbt_project.project_dir)),
    },
    executor=in_process_executor,
)

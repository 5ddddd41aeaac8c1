"""The one entry point of the Dagster code location (workspace.yaml loads it).

Loading it never starts a JVM, connects to Kafka or opens the warehouse.
"""

from __future__ import annotations

import os

from dagster import Definitions, in_process_executor

from pipelines.assets.attribution.assets import clicks_validated, order_attribution
from pipelines.assets.bi.assets import o2p_bi
from pipelines.assets.commission.assets import commission_dbt, gx_commission
from pipelines.assets.landing.assets import (
    capture_health_sensor,
    landing_freshness,
    landing_specs,
    reference_data,
)
from pipelines.assets.payouts.assets import payout_batch
from pipelines.assets.settlement.assets import promoter_balances
from pipelines.automation import SCHEDULES, SENSORS
from pipelines.jobs import JOBS
from pipelines.lib.alerts import alert_on_failure
from pipelines.lib.dbt_manifest import DBT_EXECUTABLE, dbt_project
from pipelines.resources import O2PConfig, O2PDbtCliResource, RegistryResource, SparkResource

defs = Definitions(
    assets=[*landing_specs, reference_data, clicks_validated, order_attribution, commission_dbt,
            promoter_balances, payout_batch, o2p_bi],
    asset_checks=[gx_commission, landing_freshness],
    jobs=JOBS,
    sensors=[*SENSORS, capture_health_sensor, alert_on_failure],
    schedules=SCHEDULES,
    resources={
        "o2p": O2PConfig(config_path=os.environ.get("O2P_CONFIG"), home=os.environ.get("O2P_HOME")),
        "spark": SparkResource(),
        "registry": RegistryResource(),
        "dbt": O2PDbtCliResource(project_dir=dbt_project, profiles_dir=str(dbt_project.project_dir),
                                 dbt_executable=DBT_EXECUTABLE),
    },
    executor=in_process_executor,
)

"""The jobs: what one run materializes. Which run follows which is `pipelines/lib/plan.py`."""

from dagster import AssetCheckKey, AssetKey, AssetSelection, define_asset_job, in_process_executor

from pipelines.assets.attribution.assets import clicks_validated, order_attribution
from pipelines.assets.bi.assets import BI_MODELS, o2p_bi
from pipelines.assets.commission.assets import commission_dbt, gx_commission
from pipelines.assets.landing.assets import reference_data
from pipelines.assets.payouts.assets import payout_batch
from pipelines.assets.settlement.assets import promoter_balances
from pipelines.lib.partitions import daily, monthly

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
    selection=AssetSelection.assets(commission_dbt, o2p_bi),
    partitions_def=monthly,
    description="The dbt commission models of one period, with their dbt tests and the GX commission gate "
                "(for an open month: estimated figures), then the BI copy.",
)
release_job = define_asset_job(
    "release_job",
    selection=AssetSelection.assets(commission_dbt, promoter_balances, payout_batch, o2p_bi),
    partitions_def=monthly,
    executor_def=in_process_executor,
    description="Commission, settlement and the payout release of one ended period, gated by every check; "
                "then the BI copy.",
)

JOBS = [reference_job, attribution_job, commission_job, release_job]


def without_bi(job_name: str) -> tuple[list[AssetKey], list[AssetCheckKey]]:
    """The assets and checks of a commission_job run that leaves the BI marts and copy to a later
    run of the same plan (Step.bi false): the money path only, with every check on it (the dbt
    tests and the Great Expectations commission gate)."""
    assert job_name == commission_job.name, job_name
    keys = sorted((k for k in commission_dbt.keys if k not in BI_MODELS), key=lambda k: k.path)
    checks = sorted((c for c in (*commission_dbt.check_keys, *gx_commission.check_keys) if c.asset_key in set(keys)),
                    key=lambda c: (c.asset_key.path, c.name))
    return keys, checks


def reusing_commission(job_name: str) -> tuple[list[AssetKey], list[AssetCheckKey]]:
    """The assets and checks of a release_job run that reuses the commission build of a run before
    it (pipelines/lib/builds.py): settlement, the payout and the BI copy, with their gates."""
    assert job_name == release_job.name, job_name
    keys = [promoter_balances.key, payout_batch.key, *o2p_bi.keys]
    checks = [c for a in (promoter_balances, payout_batch, o2p_bi) for c in a.check_keys]
    return sorted(keys, key=lambda k: k.path), sorted(checks, key=lambda c: (c.asset_key.path, c.name))

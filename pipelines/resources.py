"""Resources: the validated config (one environment switch: O2P_CONFIG / O2P_HOME), Spark,
the release registry, and dbt (pipelines/definitions.py)."""

from __future__ import annotations

from functools import cache

from dagster import ConfigurableResource
from dagster_dbt import DbtCliResource

from o2p.config import Config, load_config


@cache
def _load(path: str | None, home: str | None) -> Config:
    return load_config(path, home=home)


class O2PConfig(ConfigurableResource):
    """Loads and validates the config file once per process (errors name the key path)."""

    config_path: str | None = None
    home: str | None = None

    def get(self) -> Config:
        return _load(self.config_path, self.home)


class SparkResource(ConfigurableResource):
    """The Spark session of a run: `spark.master` and `spark.conf` from the o2p config, which
    `master` / `conf` here override (e.g. a standalone cluster for one deployment). Started on
    first use, one per process (pipelines/lib/spark.py): loading the definitions starts no JVM."""

    master: str | None = None
    conf: dict[str, str] = {}

    def session(self, cfg: Config):
        from pipelines.lib.spark import get_spark

        if self.master or self.conf:
            cfg = cfg.model_copy(update={"spark": cfg.spark.model_copy(update={
                "master": self.master or cfg.spark.master, "conf": {**cfg.spark.conf, **self.conf}})})
        return get_spark(cfg)


class RegistryResource(ConfigurableResource):
    """The release registry: the config's `registry_url` (SQLite under the home by default,
    PostgreSQL in production), which `url` here overrides for one deployment."""

    url: str | None = None

    def get(self, cfg: Config):
        from o2p.registry import Registry

        return Registry(self.url or cfg.registry)


@cache
def _dbt_version(executable: str):
    """`dbt --version` of this executable, as dagster-dbt parses it."""
    import re
    import subprocess

    from packaging import version

    out = subprocess.check_output([executable, "--version"]).decode("utf-8")
    match = re.search(r"(\d+\.\d+\.\d+)", out)
    if not match:
        raise ValueError(f"could not read the dbt version from `{executable} --version`: {out.strip()}")
    return version.parse(match.group(1))


class O2PDbtCliResource(DbtCliResource):
    """dagster-dbt's resource without two costs it pays on every run (issue #16), each a few
    seconds on 2 cores: a `dbt --version` process (asked once per process here: the executable
    does not change under a running process), and a dbt adapter loaded in this process with the
    project's macros, which dagster-dbt uses only to fetch row counts and column metadata — the
    commission asset counts its marts itself (`mart_metadata`), after dbt has exited."""

    @property
    def _cli_version(self):
        return _dbt_version(self.dbt_executable)

    def _initialize_dbt_core_adapter(self, args):
        return None

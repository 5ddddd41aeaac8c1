"""Resources: the validated config (one environment switch: O2P_CONFIG / O2P_HOME), Spark,
the release registry, and dbt (pipelines/definitions.py)."""

from __future__ import annotations

from functools import cache

from dagster import ConfigurableResource

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

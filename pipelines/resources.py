"""Resources: the validated config (one environment switch: O2P_CONFIG / O2P_HOME) and dbt."""

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

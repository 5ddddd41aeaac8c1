"""The one validated config file (rulebook §9).

`load_config()` reads the shipped defaults, deep-merges the operator's YAML
over them (so a file names only what it changes), validates the result with
pydantic (unknown keys and bad values are refused with the key's path) and
returns a frozen `Config` whose `config_hash` goes into every manifest.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import os
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from o2p import layout
from o2p.errors import InputError

CONFIG_ENV = "O2P_CONFIG"
HOME_ENV = "O2P_HOME"


def parse_rate(value: Any) -> Decimal:
    """A rate is a decimal string in [0, 1] with at most 4 decimals (rulebook §0)."""
    if isinstance(value, float):
        raise ValueError("rates are decimal strings such as \"0.1250\", not floats")
    try:
        rate = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a decimal number") from None
    if not rate.is_finite() or rate < 0 or rate > 1:
        raise ValueError(f"rate {value!r} is outside [0, 1]")
    exponent = rate.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -4:
        raise ValueError(f"rate {value!r} has more than 4 decimals")
    return rate


def text_encoding(value: Any) -> str:
    """The canonical name of a text encoding Python knows (`GBK` -> `gbk`, `utf8` -> `utf-8`);
    null or empty means UTF-8, and so does `utf-8-sig` (a UTF-8 BOM is always accepted)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return "utf-8"
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not an encoding name such as utf-8 or gb18030")
    try:
        name = codecs.lookup(value.strip()).name
        "a".encode(name)  # refuses codecs that are not text encodings (base64, rot13, hex …)
    except LookupError:
        raise ValueError(
            f"{value!r} is not a text encoding Python knows (e.g. utf-8, gb18030, utf-16)"
        ) from None
    return "utf-8" if name == "utf-8-sig" else name


class _Strict(BaseModel):
    """Every key is required here: the defaults live in one place, default_config.yaml, which
    load_config() reads first (a test holds every key of the models in it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Topics(_Strict):
    clicks: str
    orders: str
    refunds: str
    deadletter: str


class KafkaConfig(_Strict):
    bootstrap_servers: str
    local_broker: bool
    # nodes of the local KRaft cluster `o2p kafka up` starts (each a broker and a controller);
    # topics get replication factor min(3, brokers) and min.insync.replicas 2 from three on
    local_brokers: int = Field(ge=1, le=9)
    partitions: int = Field(ge=1, le=64)
    consumer_group: str = Field(min_length=1)
    topics: Topics

    @field_validator("bootstrap_servers")
    @classmethod
    def _hosts(cls, v: str) -> str:
        for hp in v.split(","):
            host, _, port = hp.strip().rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"{hp!r} is not host:port")
        return v

    @model_validator(mode="after")
    def _one_address_per_local_node(self) -> KafkaConfig:
        """A local cluster of N nodes listens on the N addresses of bootstrap_servers; one address
        stands for N consecutive port pairs from it (9092, 9094, 9096: each node's controller
        listens on the port after its broker's), and clients are given every node's address."""
        addresses = [hp.strip() for hp in self.bootstrap_servers.split(",")]
        n = self.local_brokers
        if not self.local_broker or n == 1 or len(addresses) == n:
            return self
        if len(addresses) != 1:
            raise ValueError(f"kafka.local_brokers is {n} but kafka.bootstrap_servers names {len(addresses)} "
                             f"addresses: name one (the first node; the others take the next port pairs) or {n}")
        host, _, port = addresses[0].rpartition(":")
        if int(port) + 2 * n > 65535:
            raise ValueError(f"kafka.bootstrap_servers: {n} nodes from port {port} would pass port 65535")
        expanded = ",".join(f"{host}:{int(port) + 2 * i}" for i in range(n))
        object.__setattr__(self, "bootstrap_servers", expanded)
        return self


class CaptureConfig(_Strict):
    flush_records: int = Field(ge=1)
    flush_bytes: int = Field(ge=1024)
    flush_seconds: float = Field(gt=0)
    session_timeout_ms: int = Field(ge=1000, le=300000)
    lock_timeout_seconds: float = Field(gt=0)
    sink_process: bool
    max_message_bytes: int = Field(ge=1024)
    ip_salt_env: str
    broker_unreachable_seconds: float = Field(gt=0)
    # the landing assets' freshness check fails when the topics have lag and nothing has landed
    # for this long (capture stopped, stuck or too slow)
    stale_after_seconds: float = Field(gt=0)


class ClickValidityConfig(_Strict):
    bot_user_agent_patterns: list[str]
    flood_max_clicks: int = Field(ge=1)
    flood_window_seconds: int = Field(ge=1)


class AttributionConfig(_Strict):
    model: Literal["last_click", "wechat_lock"]
    self_purchase: Literal["allow", "deny"]
    lookback_days: int = Field(ge=1, le=60)
    lock_days: int = Field(ge=1)
    lock_order_extension_days: int = Field(ge=1)
    decision_trace: bool


class CommissionConfig(_Strict):
    override_rates: list[str]

    @field_validator("override_rates")
    @classmethod
    def _at_most_one_level(cls, v: list[str]) -> list[str]:
        if len(v) > 1:
            raise ValueError(
                f"{len(v)} override levels asked for; at most 1 is allowed. Two levels, the "
                "promoter included, is the legal limit: WeChat suspends payment for three-level "
                "distribution and Chinese law treats three or more recruitment-paid levels as "
                "pyramid selling (传销)"
            )
        return [str(parse_rate(r)) for r in v]


class SettlementConfig(_Strict):
    auto_confirm_days: int = Field(ge=0)
    return_window_days: int = Field(ge=0)
    payout_threshold_fen: int = Field(ge=0)


class SparkConfig(_Strict):
    master: str
    conf: dict[str, str]


class QualityConfig(_Strict):
    max_deadletter_share: str
    # occurred_at is sane when it is at most this far after its capture (producer clock skew) ...
    max_future_seconds: int = Field(ge=0, le=86400)   # a day at most: `o2p run` attributes up to tomorrow
    # ... and at most this many days before it (older events are a replay or a broken clock)
    max_event_age_days: int = Field(ge=1)

    @field_validator("max_deadletter_share")
    @classmethod
    def _share(cls, v: Any) -> str:
        return str(parse_rate(v))


class PayoutConfig(_Strict):
    # the AppID bound to the merchant (transfer-bills requires it): set yours; the shipped one is a placeholder
    wechat_appid: str = Field(pattern=r"^wx[0-9A-Za-z]{16}$")
    wechat_transfer_scene_id: str
    wechat_post_type: str
    wechat_reward_desc: str
    wechat_transfer_remark: str
    wechat_user_name_min_fen: int = Field(ge=0)
    # a second person approves a released batch before its transfer instructions exist (§10)
    require_approval: bool
    # payout.xlsx holds the statement only up to this many lines (a sheet holds 1,048,575 at most;
    # above the limit its statement sheet names statement.csv, which always has every line)
    workbook_statement_rows: int = Field(ge=0, le=1_048_575)


class AlertsConfig(_Strict):
    webhook_url_env: str
    format: Literal["slack", "wecom", "feishu"]
    timeout_seconds: float = Field(gt=0, le=60)


class AutomationConfig(_Strict):
    """What the daemon of `o2p serve` does by itself (pipelines/automation.py). Each sensor or
    schedule stays "running" when switched off and says on each tick which switch stops it."""

    attribute_landed_days: bool   # landing_sensor: newly landed clicks/orders → attribution
    commission_estimates: bool    # after attribution / new refunds: commission of open months too
    monthly_release: bool         # release_schedule: the ended month, once every gate passes
    reference_data: bool          # reference_sensor: changed reference CSVs → reference_job


class BIConfig(_Strict):
    """The BI copies of the marts (issue #14, o2p/bi.py)."""

    # also publish the marts to this PostgreSQL database (SQLAlchemy URL), one transaction per
    # refresh; null: only the DuckDB copy. A password here is read from the file: prefer a
    # libpq password file or PGPASSWORD in the environment and leave it out of the URL.
    postgres_url: str | None

    @field_validator("postgres_url")
    @classmethod
    def _postgres(cls, v: str | None) -> str | None:
        if v is None:
            return v
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(v)
        except ArgumentError as exc:
            raise ValueError(f"not a database URL ({exc})") from None
        if url.get_backend_name() != "postgresql":
            raise ValueError(f"must be a postgresql URL (postgresql+psycopg://user@host/db), not {url.get_backend_name()}")
        return v


class Config(_Strict):
    environment: Literal["local", "ci", "prod"]
    reference_dir: str | None
    reference_encoding: str
    kafka: KafkaConfig
    capture: CaptureConfig
    click_validity: ClickValidityConfig
    attribution: AttributionConfig
    commission: CommissionConfig
    settlement: SettlementConfig
    tax: Literal["cn_platform_cumulative", "cn_labor_per_payment", "none"]
    spark: SparkConfig
    registry_url: str | None
    quality: QualityConfig
    payout: PayoutConfig
    alerts: AlertsConfig
    automation: AutomationConfig
    bi: BIConfig

    @field_validator("reference_encoding", mode="before")
    @classmethod
    def _reference_encoding(cls, v: Any) -> str:
        return text_encoding(v)

    # Not part of the file: where the config came from, and the state folder.
    source: str = Field("<defaults>", exclude=True)
    home: str = Field(".o2p", exclude=True)

    # ---- derived -----------------------------------------------------------
    @property
    def config_hash(self) -> str:
        """SHA-256 of the resolved config (canonical JSON), written into every manifest. Where the
        file and the state folder are (`source`, `home`) is not part of it: the same rules give the
        same hash on every machine."""
        canonical = json.dumps(self.model_dump(mode="json", exclude={"source", "home"}), sort_keys=True,
                               ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    @property
    def home_path(self) -> Path:
        return Path(self.home)

    @property
    def reference_path(self) -> Path:
        return Path(self.reference_dir) if self.reference_dir else self.home_path / "reference"

    # where the stages' data lives: o2p/layout.py
    @property
    def landing_path(self) -> Path:
        return layout.landing_root(self.home_path)

    @property
    def warehouse_path(self) -> Path:
        return layout.warehouse_root(self.home_path)

    @property
    def duckdb_path(self) -> Path:
        return layout.duckdb_file(self.home_path)

    @property
    def payouts_path(self) -> Path:
        return layout.payouts_root(self.home_path)

    @property
    def registry(self) -> str:
        if self.registry_url:
            return self.registry_url
        from sqlalchemy.engine import URL  # quotes what a URL cannot hold raw (?, #, %, quotes)

        return URL.create("sqlite", database=str((self.home_path / "registry.sqlite").resolve())).render_as_string()

    @property
    def override_rate(self) -> Decimal:
        return Decimal(self.commission.override_rates[0]) if self.commission.override_rates else Decimal(0)


def _deep_merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _read_yaml(text: str, source: str) -> dict:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"{source}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(f"{source}: the top level must be a mapping of keys, got {type(data).__name__}")
    return data


def _format_errors(source: str, exc: ValidationError) -> str:
    lines = [f"{source}: invalid configuration"]
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"]) or "<top>"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        msg = msg.removeprefix("Value error, ")
        lines.append(f"  {path}: {msg}")
    return "\n".join(lines)


def default_config_text() -> str:
    return resources.files("o2p").joinpath("default_config.yaml").read_text(encoding="utf-8")


def load_config(path: str | os.PathLike | None = None, *, home: str | os.PathLike | None = None) -> Config:
    """Load, merge over defaults, validate. Raises InputError naming the file and key path."""
    path = path or os.environ.get(CONFIG_ENV) or None
    home = Path(home or os.environ.get(HOME_ENV) or ".o2p").resolve()
    merged = _read_yaml(default_config_text(), "default_config.yaml")
    source = "<defaults>"
    base_dir = Path.cwd()
    if path:
        p = Path(path)
        if not p.is_file():
            raise InputError(f"{p}: config file not found")
        source = str(p)
        base_dir = p.resolve().parent
        merged = _deep_merge(merged, _read_yaml(p.read_text(encoding="utf-8"), source))
    ref = merged.get("reference_dir")
    if isinstance(ref, str) and ref and not Path(ref).is_absolute():
        merged["reference_dir"] = str((base_dir / ref).resolve())
    try:
        return Config(**merged, source=source, home=str(home))
    except ValidationError as exc:
        raise InputError(_format_errors(source, exc)) from None

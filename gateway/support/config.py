"""Gateway configuration: YAML, ``${VAR}`` secrets from the environment, all errors at once.

Every problem is reported with where it is, e.g.
``sources[1] (name=web): max_attachment_mb: not a number``. Values that came from the
environment are registered as secrets so the log redactor never prints them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from gateway.model.errors import ConfigError
from gateway.support.confidential import ConfidentialMode
from gateway.support.config_text import Loc, config_location, is_secret_key, item_prefix
from gateway.support.logging import register_secret
from gateway.support.lookup_config import LookupConfig
from gateway.support.mail_config import SmtpConfig
from gateway.support.open311_config import Open311Config
from gateway.support.privacy_config import PrivacyConfig
from gateway.support.retention_config import RetentionConfig
from gateway.support.routing_config import (
    ClassifierConfig,
    DeadlinesConfig,
    ReportsConfig,
    RoutingConfig,
    TaxonomyConfig,
)
from gateway.support.sms_config import SmsConfig

DEFAULT_CONFIG_PATH = Path("config/gateway.yaml")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_NAME = r"^[a-z0-9][a-z0-9_-]{0,62}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServerConfig(_Strict):
    """The HTTP server and its connection hygiene (docs/configuration.md, "The public
    edge"): every limit bounds what one client can hold of the process."""

    listen: str = "127.0.0.1:8080"
    shutdown_timeout_s: float = Field(default=10.0, gt=0)
    head_timeout_s: float = Field(default=10.0, gt=0, le=3600)
    body_min_rate: int = Field(default=1024, ge=0)
    body_rate_window_s: float = Field(default=5.0, gt=0, le=3600)
    keepalive_timeout_s: float = Field(default=15.0, gt=0, le=3600)
    max_connections: int = Field(default=1000, ge=1)
    loop_lag_warn_ms: float = Field(default=100.0, gt=0)
    # Intake processes on the one listening socket (gateway/server/workers.py); "auto":
    # one per core. 1 (the default) runs the gateway in this process, as it always did.
    workers: Annotated[int, Field(ge=1, le=256)] | Literal["auto"] = 1

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("must be HOST:PORT, e.g. 127.0.0.1:8080")
        return value

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    @property
    def worker_count(self) -> int:
        """``workers`` as a number: ``auto`` is the cores this process may run on."""
        if self.workers == "auto":
            return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
                else os.cpu_count() or 1
        return self.workers


class StoreConfig(_Strict):
    """The database. ``outbox_retention_days``: delivered outbox entries are deleted this
    long after their delivery (pending entries and dead letters never are); 0 or null
    keeps them forever."""

    url: str = "sqlite:///var/gateway.db"
    batch_max: int = Field(default=512, ge=1, le=10000)
    connect_timeout_s: float = Field(default=10.0, gt=0)
    outbox_retention_days: float | None = Field(default=7.0, allow_inf_nan=False)

    @field_validator("url")
    @classmethod
    def _known_engine(cls, value: str) -> str:
        if not value.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ValueError("must start with sqlite:/// or postgresql://")
        return value

    @field_validator("outbox_retention_days")
    @classmethod
    def _not_negative(cls, value: float | None) -> float | None:
        if value is not None and value < 0:
            raise ValueError("must be 0 or more days (0 or null: keep delivered entries forever)")
        return value

    @property
    def outbox_retention_s(self) -> float | None:
        """Seconds a delivered outbox entry is kept; None: forever."""
        days = self.outbox_retention_days
        return None if not days else days * 86400.0


class ApiConfig(_Strict):
    """The pull API. ``public_url``: where downstream systems reach this gateway (e.g.
    ``https://gateway.example.gov.cn``, behind a reverse proxy its public address), the
    base of the attachment links sinks deliver (gateway/delivery/attachments.py).
    ``confidential``: what ``GET /v1/cases`` and ``GET /v1/cases/{code}`` show of a
    confidential case's reporter (gateway/support/confidential.py)."""

    token: SecretStr | None = None
    public_url: str | None = Field(default=None, pattern=r"^https?://[^\s?#]+$")
    confidential: ConfidentialMode = "masked"

    @field_validator("token", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value


class LogConfig(_Strict):
    format: str = Field(default="auto", pattern="^(auto|json|console)$")
    level: str = Field(default="info", pattern="^(debug|info|warning|error)$")


class OpsConfig(_Strict):
    """The operations views: ``/metrics``, ``/v1/status`` and the status page ``/ops``.

    With a ``token`` every request needs it (``Authorization: Bearer``, or the page's
    cookie); with ``loopback_only`` only clients on this machine are served. At least one
    of the two: the status page is never open to the network.
    """

    token: SecretStr | None = None
    loopback_only: bool = True
    refresh_s: int = Field(default=15, ge=2, le=3600)
    cache_s: float = Field(default=5.0, ge=0, le=600)
    backlog_warn_s: float = Field(default=900.0, gt=0)
    # Dead letters and quarantine are never purged (they wait for a person): one held
    # longer than this many days is a problem on the status page, so none ages unseen.
    held_warn_days: float = Field(default=7.0, gt=0)
    volume_days: int = Field(default=7, ge=1, le=31)
    rejections_shown: int = Field(default=10, ge=1, le=100)
    clusters_shown: int = Field(default=5, ge=1, le=50)

    @field_validator("token", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @model_validator(mode="after")
    def _protected(self) -> OpsConfig:
        if self.token is None and not self.loopback_only:
            raise ValueError("set ops.token or keep ops.loopback_only: true "
                             "(the status page must not be open to the network)")
        return self


class RetryPolicy(_Strict):
    """How long an undeliverable outbox entry is retried before it is dead-lettered."""

    max_attempts: int = Field(default=12, ge=1)
    max_age_s: float = Field(default=86400.0, gt=0)
    base_delay_s: float = Field(default=1.0, gt=0)
    max_delay_s: float = Field(default=600.0, gt=0)
    immediate_attempts: int = Field(default=2, ge=1, le=5)


class SourceConfig(BaseModel):
    """One configured source; keys other than these are the adapter's own options."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(pattern=_NAME)
    adapter: str
    format: str | None = None
    enabled: bool = True
    critical: bool = False

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


# What a sink delivers of a case's attachments (gateway/delivery/attachments.py).
AttachmentMode = Literal["link", "inline", "omit"]


class SinkConfig(BaseModel):
    """One configured sink; keys other than these are the sink kind's own options."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(pattern=_NAME)
    kind: str
    enabled: bool = True
    batch_size: int = Field(default=500, ge=1, le=5000)
    lease_s: float = Field(default=30.0, gt=0)
    poll_interval_s: float = Field(default=1.0, gt=0)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    events: bool = False  # also deliver events (hot topics), not only cases
    attachments: AttachmentMode = "link"
    attachments_inline_max_kb: int = Field(default=256, ge=1, le=10240)
    # What the sink receives of a confidential case's reporter (gateway/support/confidential.py).
    confidential: ConfidentialMode = "masked"

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


DEFAULT_BOILERPLATE = [
    "尊敬的各级领导", "尊敬的各位领导", "尊敬的领导", "各位领导", "领导您好", "领导你好",
    "您好", "你好", "你们好", "大家好", "谢谢您", "谢谢你们", "谢谢", "非常感谢", "感谢您",
    "请问", "麻烦您", "此致敬礼",
]


class DedupConfig(_Strict):
    """Repeat and related complaints and hot topics (docs/dedup.md).

    ``threshold`` is the text similarity (estimated Jaccard of character shingles) above
    which complaints of different reporters are related; ``repeat_threshold`` the one for
    the same reporter (a phone number, an e-mail address or a handle) within the window.
    """

    enabled: bool = True
    window_days: float = Field(default=30.0, gt=0)
    exact_window_hours: float = Field(default=24.0, ge=0)
    threshold: float = Field(default=0.5, gt=0, le=1)
    repeat_threshold: float = Field(default=0.4, gt=0, le=1)
    shingle_size: int = Field(default=3, ge=1, le=8)
    min_chars: int = Field(default=10, ge=0)
    boilerplate: list[str] = Field(default_factory=lambda: list(DEFAULT_BOILERPLATE))
    hot_topic_cases: int = Field(default=5, ge=2)
    hot_topic_hours: float = Field(default=24.0, gt=0)
    prune_every: int = Field(default=100, ge=1)


class GatewayConfig(_Strict):
    region_code: str = Field(default="CY", pattern=r"^[A-Z]{1,8}$")
    timezone: str = "Asia/Shanghai"
    data_dir: Path = Path("var")
    server: ServerConfig = Field(default_factory=ServerConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    log: LogConfig = Field(default_factory=LogConfig)
    ops: OpsConfig = Field(default_factory=OpsConfig)
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    sources: list[SourceConfig] = Field(default_factory=list)
    sinks: list[SinkConfig] = Field(default_factory=list)
    # What may answer the network without credentials on a listen address other than
    # loopback: "ops" and/or source names (gateway/support/config_checks.py, docs/security.md).
    allow_unauthenticated: list[str] = Field(default_factory=list)
    # Routing hints and the weekly report (gateway/routing, docs/routing.md).
    taxonomy: TaxonomyConfig = Field(default_factory=TaxonomyConfig)
    classifier: ClassifierConfig = Field(default_factory=ClassifierConfig)
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    deadlines: DeadlinesConfig = Field(default_factory=DeadlinesConfig)
    reports: ReportsConfig = Field(default_factory=ReportsConfig)
    # The Open311 GeoReport v2 read side (gateway/server/open311.py); None: not served.
    open311: Open311Config | None = None
    # Outbound mail (gateway/support/mail.py, docs/configuration.md#smtp); none: no mail.
    smtp: SmtpConfig | None = None
    # The SMS provider the case code goes out through (docs/citizen.md#sms); none: no SMS.
    sms: SmsConfig | None = None
    # Personal data: identifier keys (gateway/support/keyed_ids.py, docs/personal-data.md).
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)
    # The look-up by case code (gateway/server/lookup_route.py, docs/citizen.md).
    lookup: LookupConfig = Field(default_factory=LookupConfig)
    # How long each kind of personal data is kept (gateway/store/retention.py).
    retention: RetentionConfig = Field(default_factory=RetentionConfig)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # "Asia" is a directory
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @model_validator(mode="after")
    def _mail_has_a_server(self) -> GatewayConfig:
        if self.reports.email_to and self.smtp is None:
            raise ValueError("reports.email_to: needs the smtp block (the server to send "
                             "through)")
        for sink in self.sinks:
            if sink.kind == "citizen_email" and sink.enabled and self.smtp is None:
                raise ValueError(f"sinks ({sink.name}): kind citizen_email needs the smtp "
                                 "block (the server to send the replies through)")
        return self

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def attachments_dir(self) -> Path:
        return self.data_dir / "attachments"

    def source(self, name: str) -> SourceConfig:
        for source in self.sources:
            if source.name == name:
                return source
        raise KeyError(name)




def _expand_env(value: Any, loc: Loc, missing: list[tuple[Loc, str]]) -> Any:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in every string, recording missing ones."""
    if isinstance(value, dict):
        return {k: _expand_env(v, (*loc, str(k)), missing) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, (*loc, i), missing) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def substitute(match: re.Match[str]) -> str:
        var, default = match.group(1), match.group(2)
        found = os.environ.get(var)
        if found is None or (found == "" and default is not None):
            if default is None:
                missing.append((loc, f"environment variable {var} is not set"))
                return ""
            return default
        register_secret(found)
        return found

    return _ENV_REF.sub(substitute, value)


_FRIENDLY = {
    "float_parsing": "not a number",
    "float_type": "not a number",
    "int_parsing": "not a whole number",
    "int_type": "not a whole number",
    "bool_parsing": "not true or false",
    "bool_type": "not true or false",
    "missing": "required",
    "extra_forbidden": "unknown key",
    "string_type": "not a text",
    "list_type": "not a list",
    "dict_type": "not a mapping",
    "model_type": "not a mapping",
}


def _message(err: Any) -> str:
    return _FRIENDLY.get(err["type"]) or str(err["msg"]).removeprefix("Value error, ")


def describe_validation_error(exc: ValidationError, prefix: str = "") -> list[str]:
    """Flatten a pydantic error into ``where: what`` lines."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        where = ": ".join(p for p in (prefix, loc) if p)
        lines.append(f"{where}: {_message(err)}" if where else _message(err))
    return lines


def _line(where: str, message: str) -> str:
    return f"{where}: {message}" if where else message


def _valid_items(raw: dict[str, Any]) -> list[tuple[str, int, SourceConfig | SinkConfig]]:
    """Each source and sink that is valid on its own (the others are reported already)."""
    models: dict[str, type[SourceConfig] | type[SinkConfig]] = {
        "sources": SourceConfig, "sinks": SinkConfig,
    }
    items: list[tuple[str, int, SourceConfig | SinkConfig]] = []
    for section, model in models.items():
        entries = raw.get(section)
        if not isinstance(entries, list):
            continue
        for index, entry in enumerate(entries):
            try:
                items.append((section, index, model.model_validate(entry)))
            except ValidationError:
                continue
    return items


def _plugin_options(item: SourceConfig | SinkConfig) -> type[BaseModel]:
    """The options model of the item's adapter or sink kind; ``LookupError`` if unknown."""
    from gateway.support import registry

    if isinstance(item, SourceConfig):
        options_model = registry.options_model("adapter", item.adapter)
        if item.format is not None:
            registry.normalizer(item.format)
        return options_model
    return registry.options_model("sink", item.kind)


def _check_plugins(raw: dict[str, Any], errors: list[str], skip: set[Loc]) -> None:
    """Names used once; each source's and sink's own options valid for its registered class.

    Problems at a location in ``skip`` (a missing environment variable) are reported already.
    """
    seen: set[tuple[str, str]] = set()
    for section, index, item in _valid_items(raw):
        prefix = item_prefix(section, index, raw[section][index])
        if (section, item.name) in seen:
            errors.append(f"{prefix}: name: used twice")
        seen.add((section, item.name))
        try:
            options_model = _plugin_options(item)
        except LookupError as exc:
            errors.append(f"{prefix}: {exc.args[0]}")
            continue
        try:
            options_model.model_validate(item.options)
        except ValidationError as exc:
            errors.extend(
                _line(config_location((section, index, *err["loc"]), raw), _message(err))
                for err in exc.errors() if (section, index, *err["loc"]) not in skip
            )


def _register_literal_secrets(value: Any) -> None:
    """Secrets belong in the environment, but a literal one must not reach a log either."""
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, str) and is_secret_key(str(key)):
                register_secret(item)
            else:
                _register_literal_secrets(item)
    elif isinstance(value, list):
        for item in value:
            _register_literal_secrets(item)


def parse_config(raw: Any, origin: str = "config") -> GatewayConfig:
    """Validate an already-loaded mapping; raise ``ConfigError`` listing every problem."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError([f"{origin}: the top level must be a mapping"])
    missing: list[tuple[Loc, str]] = []
    expanded = _expand_env(raw, (), missing)
    _register_literal_secrets(expanded)
    errors = [_line(config_location(loc, raw), message) for loc, message in missing]
    config: GatewayConfig | None = None
    reported = {loc for loc, _ in missing}
    try:
        config = GatewayConfig.model_validate(expanded)
    except ValidationError as exc:
        errors.extend(
            _line(config_location(tuple(err["loc"]), expanded), _message(err))
            for err in exc.errors() if tuple(err["loc"]) not in reported
        )
    _check_plugins(expanded, errors, reported)
    if not errors and config is not None:
        from gateway.support.config_checks import (  # it reads the adapters' classes
            exposure_errors,
            privacy_errors,
        )

        errors = exposure_errors(config) + privacy_errors(config)
    if errors or config is None:
        raise ConfigError(errors or [f"{origin}: invalid"])
    return config


def load_config(path: Path | str = DEFAULT_CONFIG_PATH) -> GatewayConfig:
    """Read and validate a YAML config file."""
    return parse_config(read_config_file(path), str(path))


def read_config_file(path: Path | str) -> Any:
    """The YAML of ``path`` as written (``${VAR}`` not expanded yet)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML: {exc}"]) from None
    return raw

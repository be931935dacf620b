"""Configuration: built-in defaults, one optional TOML file, and validation naming the bad key."""

from __future__ import annotations

import copy
import os
import tomllib
from collections.abc import Collection
from dataclasses import Field, dataclass, fields
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from alerts.channels import SmtpSettings
from alerts.subscribers import Subscriber, SubscriberError, Vocabulary, parse_subscribers
from spiders.normalize import is_regulator_host, regulator_of_host
from tracker.sources import REGULATORS, SOURCES, SourceConfigError, Spec
from tracker.tagging import KINDS, Taxonomy, TaxonomyError, load_taxonomy

T = TypeVar("T")

CONFIG_ENV = "HKMA_TRACKER_CONFIG"
DB_ENV = "HKMA_TRACKER_DB"
DEFAULT_DB = "hkma-tracker.db"


@dataclass(frozen=True)
class CrawlSettings:
    """The `[crawl]` table: how politely and how far the spiders fetch."""

    user_agent: str = "hkma-tracker/0.1 (regulatory change tracker)"
    download_delay: float = 2.0
    concurrency_per_host: int = 2
    autothrottle: bool = True
    # A loopback mirror is throttled like the host it stands for (a rehearsal or benchmark of
    # timings); by default it is not (tests and the demo run at once).
    throttle_mirrors: bool = False
    timeout: int = 30
    retries: int = 2
    max_page_bytes: int = 5 * 1024 * 1024
    obey_robots_txt: bool = True
    log_level: str = "WARNING"
    process_timeout: int = 1800
    # A PEM file of extra CA certificates (for a server that sends an incomplete chain).
    ca_bundle: str = ""
    # Where crawls run: "local" (a child process of the run) or "scrapyd" (jobs on the nodes
    # of `[scrapyd]`; the run decides, stores and delivers as ever).
    engine: str = "local"


@dataclass(frozen=True)
class ScrapydSettings:
    """The `[scrapyd]` table: the nodes crawls run on when `[crawl] engine = "scrapyd"`."""

    urls: tuple[str, ...] = ("http://127.0.0.1:6800",)
    # The project scrapyd knows the spiders by: without eggs, the `[settings]` name of the
    # scrapy.cfg in the folder scrapyd was started in.
    project: str = "default"
    # Basic-auth credentials, read from these environment variables (names, not values).
    username_env: str = ""
    password_env: str = ""
    job_timeout: int = 1800  # seconds a job may run before it is cancelled (unhealthy)
    pending_timeout: int = 300  # seconds a job may wait to start before it is cancelled
    poll_interval: float = 1.0  # seconds between status.json polls


@dataclass(frozen=True)
class HealthSettings:
    """The `[health]` table: when a listing is judged broken rather than changed."""

    # A listing that lost more than this share of its items since its last healthy run is
    # treated as broken, not as mass deletion.
    max_drop_ratio: float = 0.5
    # Below this many items, a drop is too noisy to judge.
    min_items_for_drop_check: int = 5
    # A listing where more than this share of items has no date has changed its layout.
    max_undated_share: float = 0.5
    # A full sweep of a register (BRDR) after which more current documents than this are gone
    # with nothing naming a successor is more likely a register serving too little than a
    # wave of withdrawals: the marks are held and the operator asked (`run --full-sweep
    # --accept-withdrawals` applies them). -1: never hold.
    max_withdrawals_per_sweep: int = 10


@dataclass(frozen=True)
class DocumentSettings:
    """The `[documents]` table: reading the circulars and PDFs the listings link to."""

    enabled: bool = True
    max_per_run: int = 300  # the rest waits for the next run
    pdf_max_bytes: int = 50 * 1024 * 1024
    # An HTML document (a press release, an old circular) is far smaller than a PDF; a
    # larger one is not read (it would cost memory and store megabytes of markup text).
    html_max_bytes: int = 5 * 1024 * 1024
    # Characters of a document's text kept and indexed; the rest is cut, and the record
    # says so (`document.text_cut`).
    max_text_chars: int = 1_000_000
    pdf_timeout: int = 60  # seconds of text extraction per PDF
    pdf_memory_mb: int = 1024  # per extraction
    pdf_workers: int = 2  # PDFs read at a time (each a child with the limits above)
    # Where a server gave ETag/Last-Modified, re-check unchanged-looking documents this often.
    revalidate_after_days: float = 7.0


@dataclass(frozen=True)
class OperatorSettings:
    """The `[operator]` table: who hears about broken sources and stuck deliveries."""

    emails: tuple[str, ...] = ()
    # Also (or only) a webhook, so that an alert about mail reaches someone when mail is
    # what is down; its payload as for subscribers: json, slack or teams.
    webhook: str = ""
    webhook_format: str = "json"
    unhealthy_runs: int = 3  # a source is reported broken after this many unhealthy runs
    # Seconds a subscriber's message may keep failing before the operator is told.
    delivery_stuck_after: int = 3600


@dataclass(frozen=True)
class RunSettings:
    """The `[run]` table."""

    # Seconds a whole run may take (0: no limit); unfinished sources count as unhealthy.
    deadline: int = 0


# Tables with a fixed set of keys, each read into its typed settings.
SECTIONS: dict[str, type] = {
    "crawl": CrawlSettings,
    "scrapyd": ScrapydSettings,
    "health": HealthSettings,
    "documents": DocumentSettings,
    "smtp": SmtpSettings,
    "operator": OperatorSettings,
    "run": RunSettings,
}


def _key(f: Field[Any]) -> str:
    return str(f.metadata.get("key", f.name))  # the TOML key, where it is not a Python name


def _table(cls: type) -> dict[str, Any]:
    """A settings class's defaults, shaped as its TOML table."""
    table = {}
    for f in fields(cls):
        default = f.default
        table[_key(f)] = list(default) if isinstance(default, tuple) else default
    return table


def _settings(cls: type[T], table: dict[str, Any]) -> T:
    """A checked table as its typed settings."""
    values = {f.name: table[_key(f)] for f in fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


# The whole file's shape and defaults: what `_merge` checks a config file against.
DEFAULTS: dict[str, Any] = {
    **{key: _table(cls) for key, cls in SECTIONS.items()},
    # One table per source, its defaults from the source's descriptor (tracker/sources.py).
    "sources": {name: copy.deepcopy(source.defaults) for name, source in SOURCES.items()},
    "tagging": {
        # A taxonomy file of your own; empty: the one shipped (tracker/taxonomy.toml).
        "taxonomy": "",
    },
    "digest": {"folder": "digests"},
    "subscribers": [],
    # Cron expressions (Hong Kong time) for `hkma-tracker schedule`: a source name or "all",
    # "full_sweep" for the periodic full BRDR / press-release reconciliation, "poll" for the
    # fast poll of the cheap listings (a list: fires when any of its expressions does).
    "schedule": {},
    "mirror": {},
}

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# Tables whose keys are free-form (names chosen by the user), with what their values must be.
FREE_TABLES = {
    "mirror": "mirror_base",
    "schedule": "cron",
    **{
        f"sources.{name}.{key}": kind
        for name, source in SOURCES.items()
        for key, kind in source.free_tables.items()
    },
}


class ConfigError(ValueError):
    """A config file or value is unusable; the message names the file and key at fault."""


@dataclass(frozen=True)
class Config:
    crawl: CrawlSettings
    scrapyd: ScrapydSettings
    health: HealthSettings
    # `[sources.<name>]` tables, each checked against its descriptor (tracker/sources.py).
    sources: dict[str, Spec]
    documents: DocumentSettings
    smtp: SmtpSettings
    operator: OperatorSettings
    run: RunSettings
    schedule: dict[str, str]
    subscribers: tuple[Subscriber, ...]
    digest_folder: Path
    mirrors: dict[str, str]
    taxonomy: Taxonomy  # loaded once, with the config
    origin: str = "built-in defaults"

    @property
    def smtp_configured(self) -> bool:
        return bool(self.smtp.host)

    def enabled_sources(self) -> list[str]:
        return [name for name, spec in self.sources.items() if spec["enabled"]]

    def listings(self, source: str) -> dict[str, str]:
        """Listing name -> listing id (its real URL; `#TYPE` per BRDR document type)."""
        return SOURCES[source].listings(self.sources[source])

    def spider_options(self, source: str, full: Collection[str] = ()) -> dict[str, Any]:
        """The spider's options; `full`: the listing ids to read whole this run."""
        return SOURCES[source].options(self.sources[source], full)


def vocabularies(taxonomy: Taxonomy) -> dict[str, Vocabulary]:
    """What the tag and source filters accept (of subscribers and of `changes`/`export`)."""
    return {
        **{kind: taxonomy.vocabulary(kind) for kind in KINDS},
        "sources": {name.casefold(): name for name in SOURCES},
        "regulators": {code.casefold(): code for code in REGULATORS},
    }


def _check_regulator_url(key: str, value: object) -> str:
    """A source's URL: https, on its own regulator's host (`sources.<name>....`)."""
    if not isinstance(value, str):
        raise ConfigError(f"{key} must be a URL string, got {value!r}")
    parts = urlsplit(value)
    source = SOURCES.get(key.split(".")[1]) if key.startswith("sources.") else None
    regulator = source.regulator if source else "HKMA"
    if parts.scheme != "https" or regulator_of_host(parts.hostname or "") != regulator:
        raise ConfigError(f"{key} must be an https URL on a host of the {regulator}, got {value!r}")
    return value


def _check_cron(key: str, value: object) -> str:
    """A cron expression, or a list of them (the job fires when any does), kept as one string
    joined by " | "."""
    from apscheduler.triggers.cron import CronTrigger

    given = value if isinstance(value, list) else [value]
    parts = [part for part in given if isinstance(part, str)]
    if not parts or len(parts) < len(given):
        raise ConfigError(f"{key} must be a cron expression or a list of them, got {value!r}")
    for part in (p.strip() for text in parts for p in text.split("|")):
        try:
            CronTrigger.from_crontab(part, timezone="Asia/Hong_Kong")
        except ValueError as error:
            raise ConfigError(f"{key}: {part!r} is not a cron expression ({error})") from None
    return " | ".join(parts)


def parse_mirror(key: str, origin: str, base: object) -> tuple[str, str]:
    """Validate one ORIGIN=BASE mirror pair."""
    o, b = urlsplit(origin), urlsplit(base) if isinstance(base, str) else None
    if o.scheme not in ("http", "https") or not o.hostname or o.path not in ("", "/"):
        raise ConfigError(f"{key}: {origin!r} is not an origin like https://www.hkma.gov.hk")
    if not is_regulator_host(o.hostname):
        raise ConfigError(f"{key}: {origin!r} is not a regulator's origin (HKMA, SFC, IA)")
    if b is None or b.scheme not in ("http", "https") or not b.hostname:
        raise ConfigError(f"{key}: {base!r} is not a base URL like http://127.0.0.1:8000")
    return origin.rstrip("/"), str(base).rstrip("/")


def _merge(key: str, default: Any, given: Any) -> Any:
    """`given` checked against the shape of `default`; unknown keys and wrong types raise."""
    if key == "subscribers":  # checked by parse_subscribers, which knows the taxonomy
        return given
    if key in FREE_TABLES:
        if not isinstance(given, dict):
            raise ConfigError(f"{key} must be a table")
        if FREE_TABLES[key] == "url":
            return {str(k): _check_regulator_url(f"{key}.{k}", v) for k, v in given.items()}
        if FREE_TABLES[key] == "cron":
            return {str(k): _check_cron(f"{key}.{k}", v) for k, v in given.items()}
        return dict(parse_mirror(f"{key}.{k}", str(k), v) for k, v in given.items())
    if isinstance(default, dict):
        if not isinstance(given, dict):
            raise ConfigError(f"{key} must be a table")
        merged = copy.deepcopy(default)
        for name, value in given.items():
            sub = f"{key}.{name}" if key else name
            if name not in default:
                raise ConfigError(f"unknown key {sub!r}")
            merged[name] = _merge(sub, default[name], value)
        return merged
    if isinstance(default, bool):
        if not isinstance(given, bool):
            raise ConfigError(f"{key} must be true or false, got {given!r}")
        return given
    if isinstance(default, int | float):
        if isinstance(given, bool) or not isinstance(given, int | float) or given < 0:
            raise ConfigError(f"{key} must be a non-negative number, got {given!r}")
        if isinstance(default, int) and not isinstance(given, int):
            raise ConfigError(f"{key} must be a whole number, got {given!r}")
        return given
    if isinstance(default, list):
        if not isinstance(given, list) or not all(isinstance(v, str) for v in given):
            raise ConfigError(f"{key} must be a list of strings")
        if key.startswith("sources.") and key.endswith(".urls"):
            return [_check_regulator_url(f"{key}[{i}]", v) for i, v in enumerate(given)]
        return list(given)
    if not isinstance(given, str):
        raise ConfigError(f"{key} must be a string, got {given!r}")
    if key.startswith("sources.") and key.endswith(".url"):
        return _check_regulator_url(key, given)
    return given


def load_config(path: str | Path | None = None, mirrors: list[str] | None = None) -> Config:
    """Defaults, overlaid by the TOML file at `path` (or $HKMA_TRACKER_CONFIG), then `--mirror`s."""
    path = path or os.environ.get(CONFIG_ENV) or None
    given: dict[str, Any] = {}
    origin = "built-in defaults"
    if path:
        origin = str(path)
        try:
            given = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError as error:
            raise ConfigError(f"config file {path} not found") from error
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
            raise ConfigError(f"config file {path}: {error}") from error
    try:
        merged = _merge("", DEFAULTS, given)
    except ConfigError as error:
        raise ConfigError(f"config file {origin}: {error}") from None
    if merged["crawl"]["log_level"].upper() not in LOG_LEVELS:
        raise ConfigError(f"config file {origin}: crawl.log_level must be one of {LOG_LEVELS}")
    merged["crawl"]["log_level"] = merged["crawl"]["log_level"].upper()
    for name in merged["schedule"]:
        if name not in (*merged["sources"], "all", "full_sweep", "poll"):
            raise ConfigError(
                f"config file {origin}: schedule.{name}: not a source, 'all', 'full_sweep' or "
                "'poll'"
            )
    if merged["schedule"] and not {"all", "full_sweep"} & set(merged["schedule"]):
        for name, table in merged["sources"].items():
            if table.get("enabled", True) and name not in merged["schedule"]:
                raise ConfigError(
                    f"config file {origin}: schedule: source {name!r} is enabled but no job "
                    f"runs it: add schedule.{name}, schedule.all or schedule.full_sweep, or "
                    f"set sources.{name}.enabled = false"
                )
    if merged["crawl"]["engine"] not in ("local", "scrapyd"):
        raise ConfigError(f"config file {origin}: crawl.engine must be local or scrapyd")
    if merged["crawl"]["engine"] == "scrapyd":
        if not merged["scrapyd"]["urls"]:
            raise ConfigError(f"config file {origin}: scrapyd.urls must name a node")
        for url in merged["scrapyd"]["urls"]:
            if urlsplit(url).scheme not in ("http", "https"):
                raise ConfigError(f"config file {origin}: scrapyd.urls: {url!r} is not a URL")
    for key in ("crawl", "smtp"):
        bundle = merged[key]["ca_bundle"]
        if bundle and not Path(bundle).is_file():
            raise ConfigError(f"config file {origin}: {key}.ca_bundle: no file {bundle}")
    for name, source in SOURCES.items():
        try:
            source.check(merged["sources"][name])
        except SourceConfigError as error:
            raise ConfigError(f"config file {origin}: sources.{name}.{error}") from None
    if merged["smtp"]["security"] not in ("starttls", "ssl", "none"):
        raise ConfigError(f"config file {origin}: smtp.security must be starttls, ssl or none")
    for email in merged["operator"]["emails"]:
        if "@" not in email or any(c in email for c in "\r\n,;<>"):
            raise ConfigError(f"config file {origin}: operator.emails: {email!r} is not an address")
    webhook = merged["operator"]["webhook"]
    if webhook and urlsplit(webhook).scheme not in ("http", "https"):
        raise ConfigError(f"config file {origin}: operator.webhook must be an http(s) URL")
    if merged["operator"]["webhook_format"] not in ("json", "slack", "teams"):
        raise ConfigError(
            f"config file {origin}: operator.webhook_format must be json, slack or teams"
        )
    for item in mirrors or []:
        origin_part, sep, base = item.partition("=")
        if not sep:
            raise ConfigError(f"--mirror {item!r}: expected ORIGIN=BASE")
        o, b = parse_mirror(f"--mirror {item!r}", origin_part, base)
        merged["mirror"][o] = b
    try:
        taxonomy = load_taxonomy(merged["tagging"]["taxonomy"] or None)
    except TaxonomyError as error:
        raise ConfigError(f"config file {origin}: tagging.taxonomy: {error}") from None
    try:
        subscribers = tuple(parse_subscribers(merged["subscribers"], vocabularies(taxonomy)))
    except SubscriberError as error:
        raise ConfigError(f"config file {origin}: {error}") from None
    return Config(
        **{key: _settings(cls, merged[key]) for key, cls in SECTIONS.items()},
        sources=merged["sources"],
        schedule=merged["schedule"],
        subscribers=subscribers,
        digest_folder=Path(merged["digest"]["folder"]),
        mirrors=merged["mirror"],
        taxonomy=taxonomy,
        origin=origin,
    )

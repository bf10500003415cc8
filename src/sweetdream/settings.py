"""One typed Settings object, read from the environment (12-factor).

Every variable is documented in README.md. Development defaults are safe; production refuses to
start without a real SECRET_KEY.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

N = TypeVar("N", int, float)
PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEV_SECRET = "dev-only-secret-key-not-for-production-use"  # noqa: S105 (refused in production)


class SettingsError(RuntimeError):
    """Raised when the environment describes a configuration we refuse to run with."""


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def _number(name: str, default: N, kind: Callable[[str], N], what: str) -> N:
    raw = _env(name)
    if not raw:
        return default
    try:
        return kind(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be {what}, got {raw!r}") from exc


def _int(name: str, default: int) -> int:
    return _number(name, default, int, "an integer")


def _float(name: str, default: float) -> float:
    return _number(name, default, float, "a number")


def _bool(name: str, default: bool) -> bool:
    raw = _env(name).lower()
    if not raw:
        return default
    return raw in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    environment: str = "development"
    secret_key: str = DEV_SECRET
    database_url: str = ""
    redis_url: str = ""
    db_pool_size: int = 20
    worker_db_pool_size: int = 20
    # Where the worker serves its Prometheus metrics on 127.0.0.1 (the task's agent sidecar); 0: off.
    worker_metrics_port: int = 0
    log_level: str = "INFO"
    log_json: bool = False
    site_name: str = "SweetDream"
    currency: str = "VND"
    shop_timezone: str = "Asia/Ho_Chi_Minh"
    templates_dir: Path = PROJECT_ROOT / "templates"
    static_dir: Path = PROJECT_ROOT / "static"
    var_dir: Path = PROJECT_ROOT / "var"
    page_size: int = 24
    shipping_fee: int = 30000
    free_shipping_threshold: int = 500000
    s3_bucket: str = ""
    s3_endpoint_url: str = ""
    # Where shoppers load product images from: a CDN in front of the bucket's media/ prefix; empty:
    # the bucket's own address (or /media, served from var/media, with no bucket).
    media_url: str = ""
    # The nightly export: events per part file, the job's time limit, the first retry's delay.
    export_events_per_part: int = 1_000_000
    export_timeout: float = 300.0
    export_retry_delay: float = 30.0
    aws_region: str = "ap-southeast-1"
    mail_backend: str = "file"
    mail_from: str = "SweetDream <shop@sweetdream.example>"
    smtp_url: str = ""
    ses_endpoint_url: str = ""
    public_url: str = "http://127.0.0.1:8000"
    payment_gateway: str = "test"
    job_retry_delay: float = 5.0
    job_timeout: float = 60.0
    worker_shutdown_grace: int = 110
    # How many proxies in front of us append to X-Forwarded-For (the ALB: 1); 0 trusts none.
    trust_proxy_hops: int = 0
    # Shopper events (analytics/): recorded at all; days of events kept (older partitions dropped);
    # events waiting in the Redis stream at most (past it new ones are dropped and counted).
    analytics_enabled: bool = True
    analytics_retention_days: int = 400
    analytics_buffer_max: int = 100000

    @property
    def is_dev(self) -> bool:
        return self.environment in {"development", "test"}

    @property
    def is_test(self) -> bool:
        return self.environment == "test"

    @classmethod
    def from_env(cls) -> Settings:
        environment = _env("SWEETDREAM_ENV", "development").lower()
        if environment not in {"development", "test", "production"}:
            raise SettingsError("SWEETDREAM_ENV must be development, test or production")
        secret_key = _env("SECRET_KEY") or (DEV_SECRET if environment != "production" else "")
        if environment == "production" and (len(secret_key) < 32 or secret_key == DEV_SECRET):
            raise SettingsError("SECRET_KEY must be set to a random value of 32+ characters in production")
        var_dir = Path(_env("SWEETDREAM_VAR_DIR") or PROJECT_ROOT / "var")
        return cls(
            environment=environment,
            secret_key=secret_key,
            database_url=_normalise_db_url(_env("DATABASE_URL")),
            redis_url=_env("REDIS_URL"),
            db_pool_size=_int("DB_POOL_SIZE", 20),
            worker_db_pool_size=_int("WORKER_DB_POOL_SIZE", 20),
            worker_metrics_port=_int("WORKER_METRICS_PORT", 0),
            log_level=_env("LOG_LEVEL", "INFO").upper(),
            log_json=_bool("LOG_JSON", environment == "production"),
            shipping_fee=_int("SHIPPING_FEE", 30000),
            free_shipping_threshold=_int("FREE_SHIPPING_THRESHOLD", 500000),
            s3_bucket=_env("S3_BUCKET"),
            s3_endpoint_url=_env("S3_ENDPOINT_URL"),
            media_url=_env("MEDIA_URL"),
            export_events_per_part=_int("EXPORT_EVENTS_PER_PART", 1_000_000),
            export_timeout=_float("EXPORT_TIMEOUT_SECONDS", 300.0),
            export_retry_delay=_float("EXPORT_RETRY_DELAY_SECONDS", 30.0),
            aws_region=_env("AWS_REGION", "ap-southeast-1"),
            mail_backend=_env("MAIL_BACKEND", "file"),
            mail_from=_env("MAIL_FROM", "SweetDream <shop@sweetdream.example>"),
            smtp_url=_env("SMTP_URL"),
            ses_endpoint_url=_env("SES_ENDPOINT_URL"),
            public_url=_env("PUBLIC_URL", "http://127.0.0.1:8000"),
            payment_gateway=_env("PAYMENT_GATEWAY", "test"),
            job_retry_delay=_float("JOB_RETRY_DELAY_SECONDS", 5.0),
            job_timeout=_float("JOB_TIMEOUT_SECONDS", 60.0),
            worker_shutdown_grace=_int("WORKER_SHUTDOWN_GRACE_SECONDS", 110),
            var_dir=var_dir,
            trust_proxy_hops=_trusted_proxy_hops(),
            analytics_enabled=_bool("ANALYTICS_ENABLED", True),
            analytics_retention_days=max(1, _int("ANALYTICS_RETENTION_DAYS", 400)),
            analytics_buffer_max=max(1, _int("ANALYTICS_BUFFER_MAX", 100000)),
        )


MAX_PROXY_HOPS = 10


def _trusted_proxy_hops() -> int:
    """TRUST_PROXY_HOPS, or the older TRUST_PROXY=true meaning one proxy (the load balancer)."""
    if not _env("TRUST_PROXY_HOPS"):
        return 1 if _bool("TRUST_PROXY", False) else 0
    hops = _int("TRUST_PROXY_HOPS", 0)
    if not 0 <= hops <= MAX_PROXY_HOPS:
        raise SettingsError(f"TRUST_PROXY_HOPS must be between 0 and {MAX_PROXY_HOPS}, got {hops}")
    return hops


def _normalise_db_url(url: str) -> str:
    """Accept the usual postgres:// forms and use the asyncpg driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    return url

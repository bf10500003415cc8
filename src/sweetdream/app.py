"""create_app(settings) -> Litestar: plugins, middleware and routes in one readable place."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Any

from advanced_alchemy.extensions.litestar import SQLAlchemyAsyncConfig, SQLAlchemyPlugin
from litestar import Litestar, Request, get
from litestar.config.csrf import CSRFConfig
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.middleware.compression import CompressionMiddleware
from litestar.plugins.htmx import HTMXPlugin, HTMXRequest
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Response
from litestar.static_files import create_static_files_router
from litestar.stores.redis import RedisStore
from litestar.template.config import TemplateConfig
from litestar.types import Receive, Scope, Send
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from sweetdream.accounts import shopper_cache
from sweetdream.accounts.web import AccountController, current_user_middleware, shopper_state, switch_language
from sweetdream.admin.audit import AuditController
from sweetdream.admin.catalog import AdminCatalogController
from sweetdream.admin.orders import AdminOrdersController
from sweetdream.admin.people import PeopleController
from sweetdream.admin.web import AdminController
from sweetdream.analytics.export_web import ExportController
from sweetdream.analytics.recording import EventRecorder, events_middleware
from sweetdream.analytics.web import AnalyticsController
from sweetdream.cart import web as cart_web
from sweetdream.cart.web import CartController, cart_count_middleware
from sweetdream.catalog.cache import CatalogCache
from sweetdream.catalog.images import ImageStorage
from sweetdream.catalog.money import format_vnd
from sweetdream.catalog.services import CatalogService
from sweetdream.catalog.web import ShopController, note_page_events, page_address
from sweetdream.cli import SweetDreamCLI
from sweetdream.db import make_sqlalchemy_config
from sweetdream.orders import web as orders_web
from sweetdream.orders.models import payment_words
from sweetdream.orders.web import CheckoutController, OrderController
from sweetdream.payments import gateway_for
from sweetdream.platform import i18n
from sweetdream.platform.errors import exception_handlers
from sweetdream.platform.heap import freeze_startup_objects
from sweetdream.platform.http import http_middleware
from sweetdream.platform.inputs import unusable_input_middleware
from sweetdream.platform.logs import configure_logging
from sweetdream.platform.metrics import RequestMetrics, metrics_endpoint
from sweetdream.platform.pages import cached_pages, compression_config, once_per_language, per_shopper
from sweetdream.platform.parsing import forget_parsed_secrets
from sweetdream.platform.redis_pool import connect_redis
from sweetdream.platform.sessions import SessionConfig
from sweetdream.platform.shop_time import time_filters
from sweetdream.platform.web import template_macro
from sweetdream.settings import Settings

log = logging.getLogger("sweetdream")


@get("/health", name="health", exclude_from_csrf=True, skip_session=True, sync_to_thread=False)
def health() -> str:
    return "ok"


@get("/ready", name="ready", skip_session=True)
async def ready(db_session: NamedDependency[AsyncSession], state: State) -> Response[dict[str, str]]:
    checks: dict[str, str] = {}
    try:
        await db_session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # any failure means "not ready"; the name of the part is what matters
        checks["database"] = f"unavailable: {type(exc).__name__}"
    try:
        await state.redis.ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"unavailable: {type(exc).__name__}"
    healthy = all(v == "ok" for v in checks.values())
    return Response(checks, status_code=200 if healthy else 503)


def media_files(settings: Settings) -> list[Any]:
    """Development's uploaded product images (no bucket): var/media served at /media."""
    if settings.s3_bucket:
        return []
    root = settings.var_dir / "media"
    root.mkdir(parents=True, exist_ok=True)
    return [create_static_files_router(path="/media", directories=[root], name="media")]


def provide_catalog(request: Request, state: State) -> CatalogService:
    # The session opens on the first query: a page served from the catalog cache makes none.
    config: SQLAlchemyAsyncConfig = state.sqlalchemy_config
    return CatalogService(lambda: config.provide_session(state, request.scope), page_size=state.settings.page_size)


class SweetDream(Litestar):
    """Litestar with our outermost middleware around everything.

    Litestar's own middleware runs only for matched routes; request ids, security headers, the
    request log and the request metrics must also cover 404s, 405s and cached pages, so they wrap
    the whole ASGI app.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # A cached catalog page goes out before Litestar's stack, to visitors and shoppers, and so do a
        # signed-in shopper's cart, checkout and order pages (see platform.pages).
        hsts = self.state.settings.environment == "production"
        # Compression wraps everything, the cached pages included, and sits outside Litestar's error
        # handling: an error page sent after a failed session save starts a fresh compressed body.
        pages = cached_pages(
            super().__call__,
            self,
            self.state.catalog_cache,
            page_address,
            shopper_state,
            note_page_events,
            shopper_pages=(cart_web.shopper_page, orders_web.shopper_page),
            per_user_keys=shopper_cache.PER_USER_KEYS,
        )
        # Shopper events are noted inside (the cached pages too) and batched once the answer is sent.
        settings = self.state.settings
        recorder: EventRecorder | None = self.state.get("event_recorder")
        if recorder is not None:
            pages = events_middleware(pages, recorder, secure_cookie=not settings.is_dev)
        # Metrics time the whole answer (compression and cached pages included) and serve /metrics.
        # The request's language (cookie, Accept-Language) is set before the cached pages, which vary by it.
        served = metrics_endpoint(CompressionMiddleware(i18n.language_middleware(pages), compression_config()))
        media = ImageStorage(self.state.settings)
        # Images are shown from the media address and uploaded to the bucket's (the same one unless a CDN serves them).
        shown_from = media.media_url if media.media_url.startswith("http") else ""
        media_origin = " ".join(dict.fromkeys(o for o in (shown_from, media.upload_origin) if o))
        self._outer = http_middleware(served, hsts=hsts, metrics=RequestMetrics(self), media_origin=media_origin)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # type: ignore[override]
        if scope["type"] == "http":
            await self._outer(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or Settings.from_env()
    forget_parsed_secrets()
    if settings.is_dev and (not settings.database_url or not settings.redis_url):
        from sweetdream.platform.devstack import ensure_environment  # dev only, lazily

        ensure_environment(settings.var_dir)
        settings = Settings.from_env()
    configure_logging(settings.log_level, settings.log_json)
    # A Redis that stops answering must fail a request in seconds (the shopper gets "we'll be
    # right back"), not hold it until the load balancer gives up.
    redis = connect_redis(settings.redis_url, socket_connect_timeout=2, socket_timeout=2)
    # This process's batch of shopper events, sent to Redis in the background (analytics/recording.py).
    recorder = EventRecorder(redis, settings.analytics_buffer_max) if settings.analytics_enabled else None

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncGenerator[None, None]:
        if not settings.is_dev:
            freeze_startup_objects()
        if recorder is not None:
            recorder.start()
        try:
            yield
        finally:
            if recorder is not None:
                await recorder.stop()  # what this process holds goes out before it stops
            await redis.aclose()

    def template_engine(engine: JinjaTemplateEngine) -> None:
        engine.engine.filters["vnd"] = format_vnd  # in the request's language (catalog/money.py)
        engine.engine.filters["translated"] = i18n.translate_known  # stored text the shop wrote itself
        # {{ _("...") }}, {{ ngettext(...) }} and {% trans %} read the request's language (platform/i18n.py)
        engine.engine.add_extension("jinja2.ext.i18n")
        engine.engine.install_gettext_callables(  # type: ignore[attr-defined]
            i18n.gettext, i18n.ngettext, newstyle=True, pgettext=i18n.pgettext, npgettext=i18n.npgettext
        )
        engine.engine.globals.update(_=i18n.template_gettext, gettext=i18n.template_gettext)  # the same, faster
        engine.engine.filters["translate"] = i18n.translate  # what `_("text")` compiles to, faster still
        engine.engine.add_extension(i18n.GettextAsFilter)
        engine.engine.filters.update(time_filters(settings.shop_timezone))  # shop_time, shop_date, time_ago
        engine.engine.globals["current_language"] = i18n.current_language.get  # <html lang>, the switch
        engine.engine.globals["language_names"] = i18n.LANGUAGE_NAMES
        engine.engine.globals["payment_words"] = payment_words  # "paid" -> "Paid" / "Đã thanh toán"
        engine.engine.globals["site_name"] = settings.site_name
        engine.engine.globals["per_shopper"] = per_shopper  # the parts a cached page fills in per shopper
        engine.engine.globals["once_per_language"] = once_per_language  # the parts the same for everyone
        engine.engine.globals["static_version"] = "4"  # bump when static/ changes: browsers fetch it anew
        engine.engine.auto_reload = settings.is_dev  # no stat() of every template on every render
        engine.engine.globals["field"] = template_macro(engine.engine, "components/_forms.html", "field")

    sqlalchemy_config = make_sqlalchemy_config(settings, redis)  # its sessions tell Redis after a commit
    session_config = SessionConfig(
        key="sd_session",
        max_age=30 * 24 * 3600,  # 30 days of inactivity at most: renewed on every request
        renew_on_access=True,
        secure=not settings.is_dev,
        httponly=True,
        samesite="lax",
        exclude=["^/static/", "^/health$"],
    )
    state: dict[str, Any] = {
        "settings": settings,
        "sqlalchemy_config": sqlalchemy_config,
        "session_config": session_config,
        "redis": redis,
        "event_recorder": recorder,
        "catalog_cache": CatalogCache(redis),
        "payment_gateway": gateway_for(settings.payment_gateway),
    }
    return SweetDream(
        route_handlers=[
            health,
            ready,
            ShopController,
            AccountController,
            switch_language,
            AdminController,
            AdminOrdersController,
            AdminCatalogController,
            PeopleController,
            AuditController,
            AnalyticsController,
            ExportController,
            CartController,
            CheckoutController,
            OrderController,
            create_static_files_router(path="/static", directories=[settings.static_dir], name="static"),
            *media_files(settings),
        ],
        dependencies={
            "catalog": Provide(provide_catalog, sync_to_thread=False),
        },
        plugins=[SQLAlchemyPlugin(config=sqlalchemy_config), HTMXPlugin(), SweetDreamCLI()],
        request_class=HTMXRequest,
        template_config=TemplateConfig(
            directory=settings.templates_dir, engine=JinjaTemplateEngine, engine_callback=template_engine
        ),
        middleware=[
            unusable_input_middleware,
            session_config.middleware,
            current_user_middleware,
            cart_count_middleware,
        ],
        csrf_config=CSRFConfig(
            secret=settings.secret_key,
            cookie_name="sd_csrf",
            header_name="x-csrftoken",
            cookie_secure=not settings.is_dev,
            cookie_samesite="lax",
            exclude=["^/api/"],
        ),
        stores={"sessions": RedisStore(redis, namespace="session")},
        exception_handlers=exception_handlers(),
        logging_config=None,  # ours (configure_logging) applies: LOG_LEVEL and JSON lines in production
        state=State(state),
        lifespan=[lifespan],
        debug=False,
    )

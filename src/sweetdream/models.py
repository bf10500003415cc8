"""Imports every domain's models so Alembic and the metadata see all tables."""

from sweetdream.accounts.models import User
from sweetdream.analytics.export_models import ExportRun
from sweetdream.analytics.models import AnalyticsEvent
from sweetdream.audit.models import AuditEntry
from sweetdream.cart.models import CartItem
from sweetdream.catalog.models import Category, Product, StockMovement, Variant
from sweetdream.fulfillment.models import SentMessage
from sweetdream.orders.models import Order, OrderEvent, OrderLine, OutboxEvent

__all__ = [
    "AnalyticsEvent",
    "AuditEntry",
    "CartItem",
    "Category",
    "ExportRun",
    "Order",
    "OrderEvent",
    "OrderLine",
    "OutboxEvent",
    "Product",
    "SentMessage",
    "StockMovement",
    "User",
    "Variant",
]

"""Imports every domain's models so Alembic and the metadata see all tables."""

from sweetdream.catalog.models import Category, Product, Variant

__all__ = ["Category", "Product", "Variant"]

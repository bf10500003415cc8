"""Imports every domain's models so Alembic and the metadata see all tables."""

from sweetdream.accounts.models import User
from sweetdream.catalog.models import Category, Product, Variant

__all__ = ["Category", "Product", "User", "Variant"]

"""Arrange data directly in the real database, and sign shoppers in through the real session store."""

from __future__ import annotations

import json
import secrets
import uuid
from typing import Any

from litestar.testing import AsyncTestClient
from redis.asyncio import Redis
from sqlalchemy import select

from sweetdream.accounts.models import Role, User
from sweetdream.accounts.shopper_cache import shopper_changed
from sweetdream.cart.models import CartItem
from sweetdream.catalog.models import Category, Product, Variant
from sweetdream.catalog.services import search_text_for


async def make_product(
    db: Any,
    stock: int | list[int] = 5,
    price: int = 100_000,
    max_per_customer: int | None = None,
    active: bool = True,
) -> tuple[Product, list[Variant]]:
    category = await db.scalar(select(Category).order_by(Category.position).limit(1))
    tag = secrets.token_hex(4)
    stocks = stock if isinstance(stock, list) else [stock]
    product = Product(
        slug=f"test-cake-{tag}",
        name=f"Test cake {tag}",
        description="A cake for tests",
        category_id=category.id,
        price=price,
        images=[],
        search_text=search_text_for(f"Test cake {tag}", "", category.name),
        max_per_customer=max_per_customer,
        is_active=active,
    )
    product.variants = [
        Variant(label=label, sku=f"T-{tag}-{label}", stock=n, low_stock_threshold=2, position=i)
        for i, (label, n) in enumerate(zip(["S", "M", "L", "XL"], stocks, strict=False))
    ]
    db.add(product)
    await db.commit()
    return product, list(product.variants)


async def make_user(db: Any, role: Role = Role.CUSTOMER) -> User:
    user = User(
        email=f"u{uuid.uuid4().hex[:10]}@example.com",
        password_hash="unused-in-these-tests",
        name="Minh Anh",
        phone="0901234567",
        address="99 Nguyễn Huệ, Quận 1, TP.HCM",
        role=role,
    )
    db.add(user)
    await db.commit()
    return user


async def put_in_cart(db: Any, user: User, variant: Variant, quantity: int, price_seen: int = 100_000) -> None:
    shopper_changed(db, user.id)  # as the cart's own writes do: the header's badge is read anew
    db.add(CartItem(user_id=user.id, variant_id=variant.id, quantity=quantity, price_seen=price_seen))
    await db.commit()


async def signed_in(client: AsyncTestClient[Any], settings: Any, user: User) -> AsyncTestClient[Any]:
    """Give this client a session for `user` in the real Redis session store (skips the slow hash)."""
    session_id = secrets.token_hex(32)
    redis = Redis.from_url(settings.redis_url)
    await redis.set(f"session:{session_id}", json.dumps({"user_id": str(user.id)}), ex=3600)
    await redis.aclose()
    client.cookies.set("sd_session", session_id, domain="127.0.0.1")
    await client.get("/products")  # picks up the CSRF cookie
    return client


async def stock_of(db: Any, variant: Variant) -> int:
    return int(await db.scalar(select(Variant.stock).where(Variant.id == variant.id)))  # a column: always fresh

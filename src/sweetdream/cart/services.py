"""Cart rules. A visitor's cart lives in their server-side session, a signed-in shopper's in the
database; both are read through the same service, always against current prices and stock."""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, Protocol
from uuid import UUID, uuid4

from sqlalchemy import (
    CTE,
    ColumnElement,
    Delete,
    FromClause,
    Integer,
    Interval,
    ScalarSelect,
    Select,
    Table,
    and_,
    bindparam,
    delete,
    func,
    literal,
    select,
    tuple_,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from sweetdream.accounts.shopper_cache import shopper_changed
from sweetdream.cart.models import CartItem
from sweetdream.catalog.models import Category, Product, Variant, has_started
from sweetdream.catalog.money import format_vnd
from sweetdream.db import DirectRead
from sweetdream.platform.i18n import gettext as _
from sweetdream.platform.i18n import ngettext

MAX_QUANTITY = 99
CART_DAYS = 30  # a cart is kept this long after its last change


class CartError(ValueError):
    pass


@dataclass
class CartLine:
    variant_id: UUID
    product_id: UUID
    product_slug: str
    product_name: str
    image: str | None
    size_label: str
    sku: str
    quantity: int
    unit_price: int
    price_seen: int
    stock: int
    active: bool
    max_per_customer: int | None
    category: str | None = None  # its name, for the order's analytics event
    starts_at: datetime | None = None  # a class seat: when its session starts
    problems: list[str] = field(default_factory=list)  # must be fixed before checkout
    notices: list[str] = field(default_factory=list)  # worth knowing (a price change)

    @property
    def line_total(self) -> int:
        return self.unit_price * self.quantity


@dataclass
class CartView:
    lines: list[CartLine]

    @property
    def subtotal(self) -> int:
        return sum(line.line_total for line in self.lines if line.active)

    @property
    def count(self) -> int:
        return sum(line.quantity for line in self.lines)

    @property
    def has_problems(self) -> bool:
        return any(line.problems for line in self.lines)


class CartStore(Protocol):
    async def items(self) -> dict[UUID, tuple[int, int]]: ...  # variant -> (quantity, price seen)
    async def put(self, variant_id: UUID, quantity: int, price_seen: int) -> None: ...
    async def remove(self, variant_id: UUID) -> None: ...
    async def clear(self) -> None: ...


class SessionCartStore:
    """A visitor's cart, kept in the Redis-backed session (which lasts 30 days of inactivity)."""

    def __init__(self, session: MutableMapping[str, Any]) -> None:
        self.session = session

    def _raw(self) -> dict[str, list[int]]:
        return dict(self.session.get("cart") or {})

    async def items(self) -> dict[UUID, tuple[int, int]]:
        out: dict[UUID, tuple[int, int]] = {}
        for key, value in self._raw().items():
            try:
                out[UUID(key)] = (int(value[0]), int(value[1]))
            except (ValueError, TypeError, IndexError):
                continue  # a malformed entry is dropped, never a 500
        return out

    async def put(self, variant_id: UUID, quantity: int, price_seen: int) -> None:
        raw = self._raw()
        raw[str(variant_id)] = [quantity, price_seen]
        self.session["cart"] = raw

    async def remove(self, variant_id: UUID) -> None:
        raw = self._raw()
        raw.pop(str(variant_id), None)
        self.session["cart"] = raw

    async def clear(self) -> None:
        self.session.pop("cart", None)


class DbCartStore:
    def __init__(self, db: AsyncSession, user_id: UUID) -> None:
        self.db = db
        self.user_id = user_id

    async def items(self) -> dict[UUID, tuple[int, int]]:
        cutoff = cart_cutoff()
        rows = await self.db.execute(
            select(CartItem.variant_id, CartItem.quantity, CartItem.price_seen).where(
                CartItem.user_id == self.user_id, CartItem.updated_at >= cutoff
            )
        )
        return {r.variant_id: (r.quantity, r.price_seen) for r in rows}

    async def put(self, variant_id: UUID, quantity: int, price_seen: int) -> None:
        shopper_changed(self.db, self.user_id)  # the header's badge (accounts/shopper_cache.py)
        stmt = insert(CartItem).values(
            user_id=self.user_id, variant_id=variant_id, quantity=quantity, price_seen=price_seen
        )
        await self.db.execute(
            stmt.on_conflict_do_update(
                constraint="uq_cart_items_user_variant",
                set_={"quantity": quantity, "price_seen": price_seen, "updated_at": func.now()},
            )
        )

    async def remove(self, variant_id: UUID) -> None:
        shopper_changed(self.db, self.user_id)
        await self.db.execute(
            delete(CartItem).where(CartItem.user_id == self.user_id, CartItem.variant_id == variant_id)
        )

    async def put_counted(self, variant_id: UUID, quantity: int, price_seen: int) -> int:
        """`put`, returning the units now in the cart (the header's badge), in the same statement."""
        shopper_changed(self.db, self.user_id)
        now = datetime.now(UTC)
        values = {"uid": self.user_id, "vid": variant_id, "quantity": quantity, "price_seen": price_seen}
        return int(await self.db.scalar(_PUT_COUNTED, {**values, "id": uuid4(), "now": now, "cutoff": cart_cutoff()}))

    async def clear(self) -> None:
        shopper_changed(self.db, self.user_id)
        await self.db.execute(delete(CartItem).where(CartItem.user_id == self.user_id))


def cart_count_column(user_id: Any, cutoff: Any = None) -> ScalarSelect[int]:
    """The units in a shopper's cart as a column: read with the user in one query (the header's badge).
    `cutoff`: a bind parameter, for a statement built once (see accounts.services); now's by default."""
    return (
        select(func.coalesce(func.sum(CartItem.quantity), 0))
        .where(CartItem.user_id == user_id, CartItem.updated_at >= (cart_cutoff() if cutoff is None else cutoff))
        .scalar_subquery()
    )


def cart_counted_until_column(user_id: Any, cutoff: Any) -> ScalarSelect[datetime]:
    """When the badge (`cart_count_column`) stops counting the oldest line it counts now, with no
    write: `CART_DAYS` after that line's last change. None for an empty cart."""
    return (
        select(func.min(CartItem.updated_at) + literal(timedelta(days=CART_DAYS), Interval()))
        .where(CartItem.user_id == user_id, CartItem.updated_at >= cutoff)
        .scalar_subquery()
    )


def cleared_when(user_id: ColumnElement[UUID], condition: ColumnElement[bool]) -> Delete:
    """Empty a shopper's cart only if `condition` holds: for a statement that also writes their order
    (built once, so the shopper's id is an expression: a bind parameter)."""
    items: Table = CartItem.__table__  # type: ignore[assignment]
    return delete(items).where(items.c.user_id == user_id, condition)


def still_holds(
    user_id: ColumnElement[UUID], wanted: FromClause, lines: ColumnElement[int], once: ColumnElement[bool]
) -> CTE:
    """One row, `held`: the shopper's cart still holds each of `wanted`'s lines (`variant_id`,
    `quantity`; `lines` of them) at that quantity, for a statement that also writes their order. Once
    `once` holds, the cart's lines are locked (in size order) until the commit: a second checkout of
    the same cart waits here, then finds the lines the first one emptied gone (PostgreSQL reads a row
    whose lock it waited for as it was committed), and a quantity changed since the read shows."""
    items: Table = CartItem.__table__  # type: ignore[assignment]
    locked = (
        select(items.c.variant_id, items.c.quantity)
        .where(items.c.user_id == user_id, once)
        .order_by(items.c.variant_id)
        .with_for_update()
        .cte("cart_locked")
    )
    same = and_(locked.c.variant_id == wanted.c.variant_id, locked.c.quantity == wanted.c.quantity)
    matching = select(func.count()).select_from(locked.join(wanted, same)).scalar_subquery()
    return select((matching == lines).label("held")).cte("cart_held")


def cart_cutoff() -> datetime:
    """Cart lines untouched since then no longer count (they are purged daily)."""
    return datetime.now(UTC) - timedelta(days=CART_DAYS)


def session_cart_count(session: Mapping[str, Any] | None) -> int:
    """The units in a visitor's cart (kept in their session)."""
    count = 0
    for value in ((session or {}).get("cart") or {}).values():
        try:
            count += int(value[0])
        except (ValueError, TypeError, IndexError):
            continue  # a malformed entry counts for nothing, as the cart drops it
    return count


async def purge_stale_carts(db: AsyncSession) -> int:
    """Delete cart lines untouched for CART_DAYS (run daily by the worker)."""
    cutoff = datetime.now(UTC) - timedelta(days=CART_DAYS)
    result = await db.execute(delete(CartItem).where(CartItem.updated_at < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)


def only_left(stock: int) -> str:
    return (
        _("Sold out.") if stock == 0 else ngettext("Only %(num)d left.", "Only %(num)d left.", stock) % {"num": stock}
    )


def started_message() -> str:
    return _("This class has already started: its seats can no longer be booked.")


def _put_counted() -> Select[tuple[int]]:
    """Upsert one line and count the cart's units: the line's new quantity plus the other lines'
    (read as they were before this statement, which is all of them but this one)."""
    items: Table = CartItem.__table__  # type: ignore[assignment]
    now = bindparam("now", type_=items.c.updated_at.type)
    upsert = insert(items).values(
        id=bindparam("id", type_=items.c.id.type),
        user_id=bindparam("uid", type_=items.c.user_id.type),
        variant_id=bindparam("vid", type_=items.c.variant_id.type),
        quantity=bindparam("quantity", type_=Integer()),
        price_seen=bindparam("price_seen", type_=Integer()),
        created_at=now,
        updated_at=now,
    )
    upserted = (
        upsert.on_conflict_do_update(
            constraint="uq_cart_items_user_variant",
            set_={"quantity": upsert.excluded.quantity, "price_seen": upsert.excluded.price_seen, "updated_at": now},
        )
        .returning(items.c.variant_id, items.c.quantity)
        .cte("cart_put")
    )
    others = (
        select(func.coalesce(func.sum(items.c.quantity), 0))
        .where(
            items.c.user_id == bindparam("uid"),
            items.c.updated_at >= bindparam("cutoff", type_=items.c.updated_at.type),
            items.c.variant_id != upserted.c.variant_id,
        )
        .scalar_subquery()
    )
    return select(upserted.c.quantity + others)


def _size_to_add() -> Select[*tuple[Any, ...]]:
    """What adding a size needs to know, and how many of it the shopper's cart holds, in one read."""
    have = (
        select(CartItem.quantity)
        .where(
            CartItem.user_id == bindparam("uid"),
            CartItem.variant_id == Variant.id,
            CartItem.updated_at >= bindparam("cutoff"),
        )
        .scalar_subquery()
    )
    return (
        select(
            Variant.id,
            Variant.label,
            Variant.sku,
            Variant.price_override,
            Variant.stock,
            Variant.starts_at,
            Product.id.label("product_id"),
            Product.slug,
            Product.name,
            Product.price,
            Product.images,
            Product.is_active,
            Product.max_per_customer,
            func.coalesce(have, 0).label("have"),
        )
        .join(Product, Product.id == Variant.product_id)
        .where(Variant.id == bindparam("vid"))
    )


def _lines_to_order() -> Select[*tuple[Any, ...]]:
    """The cart's lines as columns. Nothing is locked here: the order's statement waits its turn at
    each size and checks the stock and prices read here under the sizes' locks (catalog/stock.py's
    `Reservation`), so a checkout holds a contested size for that statement alone (it commits as it
    ends)."""
    return (
        select(
            CartItem.quantity,
            CartItem.price_seen,
            Variant.id,
            Variant.label,
            Variant.sku,
            Variant.stock,
            Variant.starts_at,
            Variant.price_override,
            Product.id.label("product_id"),
            Product.slug,
            Product.name,
            Product.images,
            Product.is_active,
            Product.max_per_customer,
            Product.price,
            Category.name.label("category"),
        )
        .join(Variant, Variant.id == CartItem.variant_id)
        .join(Product, Product.id == Variant.product_id)
        .outerjoin(Category, Category.id == Product.category_id)
        .where(CartItem.user_id == bindparam("uid"), CartItem.updated_at >= bindparam("cutoff"))
    )


# Built once (building a statement costs more CPU than the database spends on it).
_PUT_COUNTED = _put_counted()
_SIZE_TO_ADD = _size_to_add()
_LINES_TO_ORDER = _lines_to_order()


class CartService:
    def __init__(self, db: AsyncSession, store: CartStore) -> None:
        self.db = db
        self.store = store

    @classmethod
    def of(cls, db: AsyncSession, user_id: UUID | None, session: MutableMapping[str, Any]) -> CartService:
        """The shopper's own cart: in the database when signed in, in the session for a visitor."""
        return cls(db, DbCartStore(db, user_id) if user_id else SessionCartStore(session))

    async def _variant(self, variant_id: UUID) -> tuple[Variant, Product]:
        row = (
            await self.db.execute(
                select(Variant, Product).join(Product, Product.id == Variant.product_id).where(Variant.id == variant_id)
            )
        ).first()
        if row is None or not row.Product.is_active:
            raise CartError(_("That product is no longer available."))
        return row.Variant, row.Product

    async def add(self, variant_id: UUID, quantity: int) -> CartLine:
        return (await self.add_counted(variant_id, quantity))[0]

    async def add_counted(self, variant_id: UUID, quantity: int) -> tuple[CartLine, int]:
        """Add `quantity` of a size; returns its line and the units now in the cart (the badge)."""
        if not 1 <= quantity <= MAX_QUANTITY:
            raise CartError(_("Choose a quantity from 1 to %(most)d.") % {"most": MAX_QUANTITY})
        if isinstance(self.store, DbCartStore):
            return await self._add_to_db(self.store, variant_id, quantity)
        variant, product = await self._variant(variant_id)
        have = (await self.store.items()).get(variant_id, (0, 0))[0]
        await self._check_quantity(variant, product, have + quantity)
        price = variant.effective_price(product.price)
        await self.store.put(variant_id, have + quantity, price)
        return (await self.view([variant_id])).lines[0], (await self.view()).count

    async def _add_to_db(self, store: DbCartStore, variant_id: UUID, quantity: int) -> tuple[CartLine, int]:
        """A shopper's add in two statements: the size with what their cart holds of it, then the
        line's upsert with the cart's new count (was six: the size, the cart, the upsert, two views)."""
        found = (
            await self.db.execute(_SIZE_TO_ADD, {"vid": variant_id, "uid": store.user_id, "cutoff": cart_cutoff()})
        ).first()
        if found is None or not found.is_active:
            raise CartError(_("That product is no longer available."))
        total = found.have + quantity
        _check(has_started(found.starts_at), found.stock, found.max_per_customer, total)
        price = found.price_override if found.price_override is not None else found.price
        count = await store.put_counted(variant_id, total, price)
        line = CartLine(
            variant_id=found.id,
            product_id=found.product_id,
            product_slug=found.slug,
            product_name=found.name,
            image=found.images[0] if found.images else None,
            size_label=found.label,
            sku=found.sku,
            quantity=total,
            unit_price=price,
            price_seen=price,
            stock=found.stock,
            active=True,
            max_per_customer=found.max_per_customer,
            starts_at=found.starts_at,
        )
        return line, count

    async def update(self, variant_id: UUID, quantity: int) -> None:
        if quantity == 0:
            await self.store.remove(variant_id)
            return
        if not 1 <= quantity <= MAX_QUANTITY:
            raise CartError(_("Choose a quantity from 0 to %(most)d.") % {"most": MAX_QUANTITY})
        items = await self.store.items()
        if variant_id not in items:
            raise CartError(_("That item is not in your cart."))
        variant, product = await self._variant(variant_id)
        await self._check_quantity(variant, product, quantity)
        await self.store.put(variant_id, quantity, items[variant_id][1])

    async def remove(self, variant_id: UUID) -> None:
        await self.store.remove(variant_id)

    async def _check_quantity(self, variant: Variant, product: Product, quantity: int) -> None:
        _check(variant.started(), variant.stock, product.max_per_customer, quantity)

    async def view(self, only: list[UUID] | None = None) -> CartView:
        """The cart against the database now: current price and stock, with what changed flagged."""
        if isinstance(self.store, DbCartStore):
            return await self._db_view(self.store, only)
        items = await self.store.items()
        ids = [v for v in items if only is None or v in only]
        if not ids:
            return CartView([])
        rows = await self.db.execute(
            select(Variant, Product, Category.name)
            .join(Product, Product.id == Variant.product_id)
            .outerjoin(Category, Category.id == Product.category_id)
            .where(Variant.id.in_(ids))
        )
        found = {r.Variant.id: (r.Variant, r.Product, r.name) for r in rows}
        lines = []
        for variant_id in ids:
            quantity, price_seen = items[variant_id]
            if variant_id not in found:
                await self.store.remove(variant_id)  # the size was deleted outright
                continue
            variant, product, category = found[variant_id]
            lines.append(_line(variant, product, quantity, price_seen, category))
        lines.sort(key=lambda line: (line.product_name, line.size_label))
        return CartView(lines)

    async def _db_view(self, store: DbCartStore, only: list[UUID] | None) -> CartView:
        """`view` of a shopper's cart in one query: their lines with their sizes and products."""
        stmt = (
            select(CartItem.quantity, CartItem.price_seen, Variant, Product, Category.name)
            .join(Variant, Variant.id == CartItem.variant_id)
            .join(Product, Product.id == Variant.product_id)
            .outerjoin(Category, Category.id == Product.category_id)
            .where(CartItem.user_id == store.user_id, CartItem.updated_at >= cart_cutoff())
        )
        if only is not None:
            stmt = stmt.where(CartItem.variant_id.in_(only))
        rows = await self.db.execute(stmt)
        lines = [_line(r.Variant, r.Product, r.quantity, r.price_seen, r.name) for r in rows]
        lines.sort(key=lambda line: (line.product_name, line.size_label))
        return CartView(lines)

    async def lines_to_order(self) -> CartView:
        """The cart as `view` gives it (the same lines, prices, order and problems: the review's
        digest must match the checkout page's), read as columns in one query: what placing an
        order reads, without loading whole products (their descriptions and search columns)."""
        if not isinstance(self.store, DbCartStore):
            return await self.view()
        rows = await self.db.execute(_LINES_TO_ORDER, {"uid": self.store.user_id, "cutoff": cart_cutoff()})
        lines = [
            _line(
                _SizeRead(r.id, r.label, r.sku, r.stock, r.starts_at, r.price_override),
                _ProductRead(r.product_id, r.slug, r.name, r.images, r.is_active, r.max_per_customer, r.price),
                r.quantity,
                r.price_seen,
                r.category,
            )
            for r in rows
        ]
        lines.sort(key=lambda line: (line.product_name, line.size_label))
        return CartView(lines)

    async def merge_from(self, other: CartStore) -> None:
        """Sign-in: the visitor's lines join the account's; same size adds up, capped by stock."""
        mine = await self.store.items()
        for variant_id, (quantity, price_seen) in (await other.items()).items():
            try:
                variant, product = await self._variant(variant_id)
            except CartError:
                continue
            total = min(mine.get(variant_id, (0, 0))[0] + quantity, variant.stock, MAX_QUANTITY)
            if product.max_per_customer is not None:
                total = min(total, product.max_per_customer)
            if total > 0:
                await self.store.put(variant_id, total, price_seen)
        await other.clear()


def _check(started: bool, stock: int, max_per_customer: int | None, quantity: int) -> None:
    """May the cart hold `quantity` of this size? CartError says why not."""
    if started:
        raise CartError(started_message())
    if quantity > stock:
        raise CartError(only_left(stock) if stock else _("Sorry, that size is sold out."))
    if max_per_customer is not None and quantity > max_per_customer:
        raise CartError(_("At most %(num)d per customer.") % {"num": max_per_customer})


@dataclass(frozen=True)
class _SizeRead:
    """What `_line` reads of a size, read as columns (no ORM row to load)."""

    id: UUID
    label: str
    sku: str
    stock: int
    starts_at: datetime | None
    price_override: int | None

    def effective_price(self, product_price: int) -> int:
        return self.price_override if self.price_override is not None else product_price

    def started(self) -> bool:
        return has_started(self.starts_at)


@dataclass(frozen=True)
class _ProductRead:
    """What `_line` reads of a product, read as columns."""

    id: UUID
    slug: str
    name: str
    images: list[str]
    is_active: bool
    max_per_customer: int | None
    price: int


def _line(
    variant: Variant | _SizeRead,
    product: Product | _ProductRead,
    quantity: int,
    price_seen: int,
    category: str | None,
) -> CartLine:
    return cart_line(
        variant_id=variant.id,
        product_id=product.id,
        product_slug=product.slug,
        product_name=product.name,
        image=product.images[0] if product.images else None,
        size_label=variant.label,
        sku=variant.sku,
        quantity=quantity,
        unit_price=variant.effective_price(product.price),
        price_seen=price_seen,
        stock=variant.stock,
        active=product.is_active,
        max_per_customer=product.max_per_customer,
        category=category,
        starts_at=variant.starts_at,
    )


def cart_line(**values: Any) -> CartLine:
    """A cart line at the current price and stock, with what must be fixed and what changed."""
    line = CartLine(**values)
    price, price_seen, stock, quantity = line.unit_price, line.price_seen, line.stock, line.quantity
    started = has_started(line.starts_at)
    if not line.active:
        line.problems.append(_("This product is no longer sold. Please remove it."))
    elif started:
        line.problems.append(_("This class has already started and can no longer be booked. Please remove it."))
    elif stock == 0:
        line.problems.append(_("This size has sold out. Please remove it."))
    elif quantity > stock:
        line.problems.append(
            ngettext(
                "Only %(num)d left: please lower the quantity.",
                "Only %(num)d left: please lower the quantity.",
                stock,
            )
            % {"num": stock}
        )
    if line.active and price != price_seen:
        if price > price_seen:
            notice = _("The price has gone up since you added it (was %(price)s).")
        else:
            notice = _("The price has gone down since you added it (was %(price)s).")
        line.notices.append(notice % {"price": format_vnd(price_seen)})
    return line


# --- the cart page answered before Litestar (platform/pages.py) ----------------------------------
# The shopper and their cart's lines at the current prices and stock in one statement, read through
# asyncpg (no ORM rows): the lines come back as an array of records, in `_CART_LINE_FIELDS` order.
_CART_LINE_FIELDS = (
    "quantity", "price_seen", "variant_id", "size_label", "sku", "stock", "price_override", "starts_at",
    "product_id", "product_slug", "product_name", "image", "price", "active", "max_per_customer", "category",
)  # fmt: skip


def _cart_lines_column(user_id: Any, cutoff: Any) -> ScalarSelect[Any]:
    fields = (
        CartItem.quantity, CartItem.price_seen, Variant.id, Variant.label, Variant.sku, Variant.stock,
        Variant.price_override, Variant.starts_at, Product.id, Product.slug, Product.name,
        Product.images[0].astext, Product.price, Product.is_active, Product.max_per_customer, Category.name,
    )  # fmt: skip
    return (
        select(func.array_agg(tuple_(*fields)))
        .select_from(CartItem)
        .join(Variant, Variant.id == CartItem.variant_id)
        .join(Product, Product.id == Variant.product_id)
        .outerjoin(Category, Category.id == Product.category_id)
        .where(CartItem.user_id == user_id, CartItem.updated_at >= cutoff)
        .scalar_subquery()
    )


@cache
def _shopper_cart_sql() -> DirectRead:
    from sweetdream.accounts.models import User
    from sweetdream.accounts.services import shopper_columns

    lines = _cart_lines_column(User.id, bindparam("cutoff")).label("lines")
    return DirectRead.of(select(*shopper_columns(), User.phone, User.address, lines).where(User.id == bindparam("uid")))


async def shopper_with_cart(engine: AsyncEngine, user_id: UUID) -> tuple[Any, CartView]:
    """The shopper's row (`accounts.services.shopper_columns`, phone, address; None if no such
    user) and their cart as `CartService.view` shows it, in one round trip."""
    row = await _shopper_cart_sql().fetchrow(engine, uid=user_id, cutoff=cart_cutoff())
    if row is None:
        return None, CartView([])
    lines = [_line_of_record(record) for record in row["lines"] or ()]
    lines.sort(key=lambda line: (line.product_name, line.size_label))
    return row, CartView(lines)


def _line_of_record(record: tuple[Any, ...]) -> CartLine:
    values = dict(zip(_CART_LINE_FIELDS, record, strict=True))
    override = values.pop("price_override")
    values["unit_price"] = override if override is not None else values["price"]  # `Variant.effective_price`
    del values["price"]
    return cart_line(**values)

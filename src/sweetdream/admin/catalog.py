"""The admin's catalog screens: products (list, create, edit, withdraw/restore), stock adjustments
with the ledger per size, and categories. ADMIN only, CSRF on every POST (the app's config), every
change audited by the catalog's editor service (catalog/editing.py). Handlers parse, call, render."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from litestar import Controller, Request, get, post
from litestar.datastructures import State, UploadFile
from litestar.di import NamedDependency, Provide
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Response, Template
from sqlalchemy.ext.asyncio import AsyncSession

from sweetdream.accounts.guards import requires_admin
from sweetdream.audit.services import Actor
from sweetdream.catalog.editing import CatalogWrites, FieldErrors, ProductInput, SizeInput
from sweetdream.catalog.images import (
    MAX_BYTES,
    ImageRefused,
    ImageStorage,
    Presigned,
    image_type,
    incoming_key,
    is_incoming_key_for,
    is_key_for,
    new_key,
    upload_signature,
    upload_signature_ok,
)
from sweetdream.catalog.models import ADJUSTMENT_REASONS, Product, StockReason
from sweetdream.catalog.text import slugify
from sweetdream.platform.i18n import gettext as _
from sweetdream.platform.i18n import gettext_noop
from sweetdream.platform.parsing import clean_text, parse_int, parse_page
from sweetdream.platform.queue import MAKE_THUMBNAIL, enqueue
from sweetdream.platform.shop_time import in_shop_time
from sweetdream.platform.web import BadRequest, flash, form_data, render
from sweetdream.settings import Settings

log = logging.getLogger("sweetdream.admin")

MAX_PRICE = 100_000_000  # VND: a cake costs far less; a typo with three extra zeros is refused
MAX_STOCK = 100_000
MAX_SIZES = 12
DEFAULT_ZONE = Settings.shop_timezone  # the shop's clock unless settings say otherwise
_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


def provide_editor(request: Request, db_session: NamedDependency[AsyncSession], state: State) -> CatalogWrites:
    user = request.state.user
    return CatalogWrites(db_session, state.redis, Actor(user.id, user.email))


def parse_uuid(raw: str) -> UUID | None:
    try:
        return UUID(raw)
    except ValueError:
        return None


def parse_vnd(raw: str) -> int | None:
    """A price as a person types it in VND: '299000', '299.000', '299 000', '299,000 đ'."""
    digits = raw.strip().removesuffix("đ").strip().replace(".", "").replace(",", "").replace(" ", "")
    digits = digits.replace("\u00a0", "")
    return parse_int(digits, max_digits=9)


@dataclass
class ProductForm:
    """The form's values as typed (to show them again) and the parsed input with its errors."""

    values: dict[str, Any]
    sizes: list[dict[str, str]]
    parsed: ProductInput
    errors: dict[str, str]


def blank_size() -> dict[str, str]:
    return {"id": "", "label": "", "price": "", "stock": "0", "threshold": "3", "sku": "", "remove": "", "starts": ""}


# What an <input type="datetime-local"> sends (browsers add seconds only when a step asks for them).
_LOCAL_FORMATS = ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S")


def parse_local_time(raw: str, zone: str) -> datetime | None:
    """A datetime-local value read on the shop's clock, as UTC; None if it is not one."""
    if len(raw) > 19:
        return None
    for pattern in _LOCAL_FORMATS:
        try:
            typed = datetime.strptime(raw, pattern)
        except ValueError:
            continue
        if typed.year < 2000:
            return None
        return typed.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)
    return None


def local_time_value(moment: datetime | None, zone: str) -> str:
    """A stored start as the datetime-local field shows it: the shop's clock, to the minute."""
    return "" if moment is None else in_shop_time(moment, zone).strftime("%Y-%m-%dT%H:%M")


def product_values(product: Product | None, zone: str = DEFAULT_ZONE) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """The form filled from a product (or empty for a new one, with two blank sizes)."""
    if product is None:
        return {"name": "", "slug": "", "category": "", "description": "", "max_per_customer": ""}, [
            blank_size(),
            blank_size(),
        ]
    values = {
        "name": product.name,
        "slug": product.slug,
        "category": str(product.category_id),
        "description": product.description,
        "max_per_customer": "" if product.max_per_customer is None else str(product.max_per_customer),
    }
    sizes = [
        {
            "id": str(v.id),
            "label": v.label,
            "price": str(v.effective_price(product.price)),
            "stock": str(v.stock),
            "threshold": str(v.low_stock_threshold),
            "sku": v.sku,
            "remove": "",
            "starts": local_time_value(v.starts_at, zone),
        }
        for v in product.variants
    ]
    return values, sizes


def parse_product_form(data: dict[str, str], zone: str = DEFAULT_ZONE) -> ProductForm:
    """Every rule that needs no database, field by field (the editor checks slug/SKU uniqueness and
    that a new class start is ahead). `zone`: the shop's, on whose clock starts are typed."""
    errors: dict[str, str] = {}
    name = " ".join(data.get("name", "").split())
    if not name:
        errors["name"] = _("Give the product a name.")
    elif len(name) > 200:
        errors["name"] = _("At most 200 characters.")
    slug = data.get("slug", "").strip().lower() or slugify(name)[:160]
    if name and not slug:
        errors["slug"] = _("Use at least one letter or digit in the name or the address.")
    elif slug and (len(slug) > 160 or not _SLUG.match(slug)):
        errors["slug"] = _("Only lowercase letters a-z, digits and single hyphens.")
    category_id = parse_uuid(data.get("category", ""))
    if category_id is None:
        errors["category"] = _("Choose a category.")
    description = data.get("description", "").strip()
    if len(description) > 5000:
        errors["description"] = _("At most 5,000 characters.")
    raw_max = data.get("max_per_customer", "").strip()
    max_per_customer = None
    if raw_max:
        max_per_customer = parse_int(raw_max, max_digits=4)
        if max_per_customer is None or max_per_customer < 1:
            errors["max_per_customer"] = _("A whole number from 1, or leave it empty.")
    sizes_typed: list[dict[str, str]] = []
    sizes: list[SizeInput] = []
    for index in range(MAX_SIZES):
        prefix = f"size-{index}-"
        typed = {key: data.get(prefix + key, "").strip() for key in blank_size()}
        if not typed["id"] and not any(typed[k] for k in ("label", "price", "sku")):
            continue  # an empty new row: ignored
        position = len(sizes_typed)
        sizes_typed.append(typed)
        sizes.append(_parse_size(typed, f"size-{position}-", slug, errors, zone))
    kept = [s for s in sizes if not s.remove]
    if not kept:
        errors["sizes"] = _("A product needs at least one size.")
    labels = [s.label.casefold() for s in kept]
    skus = [s.sku for s in kept]
    for position, size in enumerate(sizes):
        if size.remove:
            continue
        if size.label and labels.count(size.label.casefold()) > 1:
            errors.setdefault(f"size-{position}-label", _("Two sizes have this label."))
        if size.sku and skus.count(size.sku) > 1:
            errors.setdefault(f"size-{position}-sku", _("Two sizes have this SKU."))
    values = {
        "name": name,
        "slug": slug,
        "category": data.get("category", ""),
        "description": description,
        "max_per_customer": raw_max,
    }
    parsed = ProductInput(name, slug, category_id, description, max_per_customer, sizes)
    return ProductForm(values, sizes_typed, parsed, errors)


def _parse_size(typed: dict[str, str], prefix: str, slug: str, errors: dict[str, str], zone: str) -> SizeInput:
    size_id = parse_uuid(typed["id"]) if typed["id"] else None
    remove = bool(typed["remove"])
    label = " ".join(typed["label"].split())
    if not remove:
        if not label:
            errors[prefix + "label"] = _("Name the size (for example 16 cm).")
        elif len(label) > 40:
            errors[prefix + "label"] = _("At most 40 characters.")
    price = parse_vnd(typed["price"])
    if not remove and (price is None or not 0 < price <= MAX_PRICE):
        errors[prefix + "price"] = _("A price in đồng, for example 299000.")
    stock_level = parse_int(typed["stock"] or "0", max_digits=6)
    if not remove and size_id is None and (stock_level is None or stock_level > MAX_STOCK):
        errors[prefix + "stock"] = _("A whole number from 0.")
    threshold = parse_int(typed["threshold"] or "3", max_digits=6)
    if not remove and (threshold is None or threshold > MAX_STOCK):
        errors[prefix + "threshold"] = _("A whole number from 0.")
    sku = typed["sku"].upper() or f"{slug}-{slugify(label)}".upper()[:64]
    typed["sku"] = typed["sku"].upper()
    if not remove and (len(sku) > 64 or not re.fullmatch(r"[A-Z0-9][A-Z0-9._-]*", sku)):
        errors[prefix + "sku"] = _("Letters A-Z, digits, dots, hyphens and underscores.")
    starts_at = parse_local_time(typed["starts"], zone) if typed["starts"] else None
    if not remove and typed["starts"] and starts_at is None:
        errors[prefix + "starts"] = _("A date and time, for example 2027-03-06 09:00, or leave it empty.")
    return SizeInput(size_id, label, price, stock_level, threshold, sku, remove, starts_at)


def _zone(request: Request) -> str:
    zone: str = request.app.state.settings.shop_timezone
    return zone


class AdminCatalogController(Controller):
    path = "/admin"
    guards = [requires_admin]
    dependencies = {"editor": Provide(provide_editor, sync_to_thread=False)}

    # --- the list --------------------------------------------------------------------------------

    @get("/products", name="admin-products")
    async def products(
        self,
        request: Request,
        editor: NamedDependency[CatalogWrites],
        q: FromQuery[str] = "",
        category: FromQuery[str] = "",
        status: FromQuery[str] = "",
        low: FromQuery[str] = "",
        page: FromQuery[str] = "1",
    ) -> Template:
        status = status if status in ("active", "withdrawn") else ""
        q, category = clean_text(q, 100), clean_text(category, 120)
        shown = await editor.product_page(q, category, status, low == "1", parse_page(page))
        return render(
            request,
            "admin/catalog/products.html",
            listing=shown,
            q=q,
            category=category,
            status=status,
            low=low == "1",
            categories=await editor.categories(),
        )

    # --- create and edit -------------------------------------------------------------------------

    @get("/products/new", name="admin-product-new")
    async def new_product(self, request: Request, editor: NamedDependency[CatalogWrites]) -> Template:
        values, sizes = product_values(None)
        return await self._form(request, editor, None, values, sizes, {})

    @post("/products/new", name="admin-product-create")
    async def create_product(
        self, request: Request, editor: NamedDependency[CatalogWrites], db_session: NamedDependency[AsyncSession]
    ) -> Template | Redirect:
        data = await form_data(request)
        form = parse_product_form(data, _zone(request))
        if "add_size" in data:  # "Add a size" without JavaScript: the same form with one more row
            return await self._form(request, editor, None, form.values, [*form.sizes, blank_size()], {})
        if form.errors:
            return await self._form(request, editor, None, form.values, form.sizes, form.errors, status_code=400)
        try:
            product = await editor.create_product(form.parsed)
        except FieldErrors as exc:
            return await self._form(request, editor, None, form.values, form.sizes, exc.errors, status_code=400)
        await db_session.commit()
        flash(request, _("%(name)s is in the shop.") % {"name": product.name})
        return Redirect(f"/admin/products/{product.id}", status_code=303)

    @get("/products/{product_id:uuid}", name="admin-product")
    async def product(
        self,
        request: Request,
        product_id: FromPath[UUID],
        editor: NamedDependency[CatalogWrites],
    ) -> Template:
        product = await self._found(editor, product_id)
        values, sizes = product_values(product, _zone(request))
        return await self._form(request, editor, product, values, sizes, {})

    @post("/products/{product_id:uuid}", name="admin-product-update")
    async def update_product(
        self,
        request: Request,
        product_id: FromPath[UUID],
        editor: NamedDependency[CatalogWrites],
        db_session: NamedDependency[AsyncSession],
    ) -> Template | Redirect:
        product = await self._found(editor, product_id)
        data = await form_data(request)
        form = parse_product_form(data, _zone(request))
        if "add_size" in data:
            return await self._form(request, editor, product, form.values, [*form.sizes, blank_size()], {})
        if form.errors:
            return await self._form(request, editor, product, form.values, form.sizes, form.errors, status_code=400)
        try:
            product = await editor.update_product(product_id, form.parsed)
        except FieldErrors as exc:
            product = await self._found(editor, product_id)
            return await self._form(request, editor, product, form.values, form.sizes, exc.errors, status_code=400)
        await db_session.commit()
        flash(request, _("Saved: shoppers see it now."))
        return Redirect(f"/admin/products/{product_id}", status_code=303)

    @post("/products/{product_id:uuid}/withdraw", name="admin-product-withdraw")
    async def withdraw(
        self,
        request: Request,
        product_id: FromPath[UUID],
        editor: NamedDependency[CatalogWrites],
        db_session: NamedDependency[AsyncSession],
    ) -> Redirect:
        return await self._set_active(request, product_id, editor, db_session, active=False)

    @post("/products/{product_id:uuid}/restore", name="admin-product-restore")
    async def restore(
        self,
        request: Request,
        product_id: FromPath[UUID],
        editor: NamedDependency[CatalogWrites],
        db_session: NamedDependency[AsyncSession],
    ) -> Redirect:
        return await self._set_active(request, product_id, editor, db_session, active=True)

    # --- stock -----------------------------------------------------------------------------------

    @post("/products/{product_id:uuid}/sizes/{variant_id:uuid}/stock", name="admin-stock-adjust")
    async def adjust_stock(
        self,
        request: Request,
        product_id: FromPath[UUID],
        variant_id: FromPath[UUID],
        editor: NamedDependency[CatalogWrites],
        db_session: NamedDependency[AsyncSession],
    ) -> Template | Redirect:
        product = await self._found(editor, product_id)
        if variant_id not in {v.id for v in product.variants}:
            raise NotFoundException(_("No such size."))
        data = await form_data(request)
        errors: dict[str, str] = {}
        reason = next((r for r in ADJUSTMENT_REASONS if r.value == data.get("reason", "")), None)
        if reason is None:
            errors["reason"] = _("Choose why the stock changes.")
        typed_quantity = data.get(f"quantity-{variant_id}", "").strip()
        quantity = parse_int(typed_quantity, max_digits=6)
        if quantity is None or (reason != StockReason.COUNT and quantity == 0):
            errors["quantity"] = (
                _("The number of units counted, from 0.")
                if reason == StockReason.COUNT
                else _("How many units, from 1.")
            )
        note = data.get(f"note-{variant_id}", "").strip()[:300]
        if not errors:
            assert reason is not None and quantity is not None
            try:
                if reason == StockReason.COUNT:
                    await editor.adjust_stock(variant_id, reason, counted=quantity, note=note)
                else:
                    delta = quantity if reason == StockReason.DELIVERY else -quantity
                    await editor.adjust_stock(variant_id, reason, delta=delta, note=note)
            except FieldErrors as exc:
                errors = exc.errors
        if errors:
            product = await self._found(editor, product_id)
            values, sizes = product_values(product, _zone(request))
            return await self._form(
                request,
                editor,
                product,
                values,
                sizes,
                {},
                status_code=400,
                stock_errors={str(variant_id): errors},
                stock_typed={
                    "variant": str(variant_id),
                    "reason": data.get("reason", ""),
                    "quantity": typed_quantity,
                    "note": note,
                },
            )
        await db_session.commit()
        if not request.headers.get("hx-request"):  # HTMX swaps the stock section, which shows the new level itself
            flash(request, _("Stock updated."))
        return Redirect(f"/admin/products/{product_id}?ledger={variant_id}#stock", status_code=303)

    # --- images --------------------------------------------------------------------------------

    @post("/products/{product_id:uuid}/images/presign", name="admin-image-presign")
    async def presign_image(
        self, request: Request, product_id: FromPath[UUID], editor: NamedDependency[CatalogWrites], state: State
    ) -> Response[dict[str, Any]]:
        """Where the browser posts the file: S3's presigned POST (or, in development, our own endpoint)."""
        await self._found(editor, product_id)
        data = await form_data(request)
        storage = ImageStorage(state.settings)
        try:
            signed = await storage.presign(
                product_id, data.get("content_type", ""), f"/admin/products/{product_id}/images/upload"
            )
        except ImageRefused as exc:
            return Response({"error": _(str(exc))}, status_code=400)
        return Response({"url": signed.url, "fields": signed.fields, "key": signed.key, "max_bytes": MAX_BYTES})

    @post("/products/{product_id:uuid}/images/upload", name="admin-image-upload")
    async def upload_image(
        self,
        request: Request,
        product_id: FromPath[UUID],
        editor: NamedDependency[CatalogWrites],
        db_session: NamedDependency[AsyncSession],
        state: State,
    ) -> Redirect:
        """Development (no bucket): a plain file input posts here; checked, written under var/media,
        recorded, thumbnailed, exactly as an S3 upload is after its confirmation."""
        storage = ImageStorage(state.settings)
        if storage.uses_s3:
            raise NotFoundException(_("Images go straight to storage here."))
        await self._found(editor, product_id)
        form = await request.form()
        upload = form.get("image")
        if not isinstance(upload, UploadFile):
            raise BadRequest(_("Choose an image file."))
        data = await upload.read(MAX_BYTES + 1)
        try:
            if len(data) > MAX_BYTES:
                raise ImageRefused(gettext_noop("Images may be at most 5 MB."))
            key = new_key(product_id, image_type(data))
            await storage.save_local(key, data)
        except ImageRefused as exc:
            raise BadRequest(_(str(exc))) from None
        return await self._record_image(request, product_id, key, editor, db_session, storage)

    @post("/products/{product_id:uuid}/images", name="admin-image-record")
    async def record_image(
        self,
        request: Request,
        product_id: FromPath[UUID],
        editor: NamedDependency[CatalogWrites],
        db_session: NamedDependency[AsyncSession],
        state: State,
    ) -> Redirect:
        """The browser's report that its upload to S3 succeeded: checked with a HEAD, then recorded."""
        await self._found(editor, product_id)
        key = (await form_data(request)).get("key", "")
        storage = ImageStorage(state.settings)
        if not is_key_for(key, product_id):
            raise BadRequest(_("That upload is not for this product."))
        try:
            await storage.check_uploaded(key)
        except ImageRefused as exc:
            raise BadRequest(_(str(exc))) from None
        return await self._record_image(request, product_id, key, editor, db_session, storage)

    @get("/products/{product_id:uuid}/images/uploaded", name="admin-image-uploaded")
    async def image_uploaded(
        self,
        request: Request,
        product_id: FromPath[UUID],
        editor: NamedDependency[CatalogWrites],
        db_session: NamedDependency[AsyncSession],
        state: State,
        bucket: FromQuery[str] = "",
        key: FromQuery[str] = "",
        sig: FromQuery[str] = "",
    ) -> Redirect:
        """Where S3 sends the browser after the page's plain form (no JavaScript) uploaded a file
        (`success_action_redirect`, with ?bucket=&key=&etag= added). A GET, so no CSRF token: the
        address is signed for this admin and this key instead, and the key must be this product's."""
        storage = ImageStorage(state.settings)
        if not storage.uses_s3:
            raise NotFoundException(_("Images are uploaded to this server here."))
        await self._found(editor, product_id)
        user_id = request.state.user.id
        if (
            bucket != storage.bucket
            or not is_incoming_key_for(key, product_id)
            or not upload_signature_ok(state.settings.secret_key, user_id, key, sig[:64])
        ):
            raise BadRequest(_("That upload is not for this product."))
        try:
            final_key = await storage.adopt_incoming(key, product_id)
        except ImageRefused as exc:
            raise BadRequest(_(str(exc))) from None
        return await self._record_image(request, product_id, final_key, editor, db_session, storage)

    async def _record_image(
        self,
        request: Request,
        product_id: UUID,
        key: str,
        editor: CatalogWrites,
        db_session: AsyncSession,
        storage: ImageStorage,
    ) -> Redirect:
        await editor.add_image(product_id, storage.url_for(key))
        await db_session.commit()
        try:  # the image is recorded; a missing thumbnail is made again by uploading it again
            await enqueue(request.app.state.redis, MAKE_THUMBNAIL, f"thumb:{key}", key)
        except Exception:
            log.warning("could not queue the thumbnail of %s", key, exc_info=True)
        flash(request, _("Image added."))
        return Redirect(f"/admin/products/{product_id}#images", status_code=303)

    # --- categories ------------------------------------------------------------------------------

    @get("/categories", name="admin-categories")
    async def categories(self, request: Request, editor: NamedDependency[CatalogWrites]) -> Template:
        return render(request, "admin/catalog/categories.html", categories=await editor.categories(), errors={})

    @post("/categories", name="admin-category-create")
    async def create_category(
        self, request: Request, editor: NamedDependency[CatalogWrites], db_session: NamedDependency[AsyncSession]
    ) -> Template | Redirect:
        data = await form_data(request)
        try:
            category = await editor.create_category(data.get("name", ""))
        except FieldErrors as exc:
            return await self._categories_with_errors(request, editor, {"new": exc.errors["name"]}, data)
        await db_session.commit()
        flash(request, _("Category %(name)s added.") % {"name": category.name})
        return Redirect("/admin/categories", status_code=303)

    @post("/categories/{category_id:uuid}/rename", name="admin-category-rename")
    async def rename_category(
        self,
        request: Request,
        category_id: FromPath[UUID],
        editor: NamedDependency[CatalogWrites],
        db_session: NamedDependency[AsyncSession],
    ) -> Template | Redirect:
        data = await form_data(request)
        try:
            await editor.rename_category(category_id, data.get("name", ""))
        except FieldErrors as exc:
            return await self._categories_with_errors(request, editor, {str(category_id): exc.errors["name"]}, data)
        await db_session.commit()
        flash(request, _("Category renamed."))
        return Redirect("/admin/categories", status_code=303)

    @post("/categories/{category_id:uuid}/move", name="admin-category-move")
    async def move_category(
        self,
        request: Request,
        category_id: FromPath[UUID],
        editor: NamedDependency[CatalogWrites],
        db_session: NamedDependency[AsyncSession],
    ) -> Redirect:
        data = await form_data(request)
        step = {"up": -1, "down": 1}.get(data.get("direction", ""))
        if step is None:
            raise NotFoundException(_("Move a category up or down."))
        try:
            await editor.move_category(category_id, step)
        except FieldErrors:
            raise NotFoundException(_("That category no longer exists.")) from None
        await db_session.commit()
        return Redirect("/admin/categories", status_code=303)

    # --- helpers ---------------------------------------------------------------------------------

    async def _categories_with_errors(
        self, request: Request, editor: CatalogWrites, errors: dict[str, str], data: dict[str, str]
    ) -> Template:
        return render(
            request,
            "admin/catalog/categories.html",
            status_code=400,
            categories=await editor.categories(),
            errors=errors,
            typed=data.get("name", ""),
        )

    async def _found(self, editor: CatalogWrites, product_id: UUID) -> Product:
        product = await editor.product(product_id)
        if product is None:
            raise NotFoundException(_("No such product."))
        return product

    async def _set_active(
        self, request: Request, product_id: UUID, editor: CatalogWrites, db_session: AsyncSession, active: bool
    ) -> Redirect:
        product = await self._found(editor, product_id)
        await editor.set_active(product_id, active)
        await db_session.commit()
        if active:
            flash(request, _("%(name)s is back in the shop.") % {"name": product.name})
        else:
            flash(request, _("%(name)s is withdrawn: shoppers no longer see it.") % {"name": product.name})
        return Redirect(f"/admin/products/{product_id}", status_code=303)

    async def _form(
        self,
        request: Request,
        editor: CatalogWrites,
        product: Product | None,
        values: dict[str, Any],
        sizes: list[dict[str, str]],
        errors: dict[str, str],
        status_code: int = 200,
        stock_errors: dict[str, dict[str, str]] | None = None,
        stock_typed: dict[str, str] | None = None,
    ) -> Template:
        ledger_rows: list[Any] = []
        ledger_total, ledger_page, ledger_variant = 0, 1, None
        if product is not None and product.variants:
            wanted = parse_uuid(request.query_params.get("ledger", "")) if request.query_params.get("ledger") else None
            ledger_variant = next((v for v in product.variants if v.id == wanted), product.variants[0])
            ledger_page = parse_page(request.query_params.get("ledger_page"))
            ledger_rows, ledger_total = await editor.ledger(ledger_variant.id, ledger_page)
        return render(
            request,
            "admin/catalog/product_form.html",
            status_code=status_code,
            product=product,
            values=values,
            sizes=sizes,
            errors=errors,
            categories=await editor.categories(),
            reasons=ADJUSTMENT_REASONS,
            stock_errors=stock_errors or {},
            stock_typed=stock_typed or {},
            ledger_rows=ledger_rows,
            ledger_total=ledger_total,
            ledger_page=ledger_page,
            ledger_pages=max(1, -(-ledger_total // 20)),
            ledger_variant=ledger_variant,
            upload_form=await self._upload_form(request, product),
        )

    async def _upload_form(self, request: Request, product: Product | None) -> Presigned | None:
        """With a bucket, the page's image form is itself a presigned POST to S3 (works without
        JavaScript; static/js/admin_images.js takes over when it runs). None in development."""
        settings = request.app.state.settings
        storage = ImageStorage(settings)
        if product is None or not storage.uses_s3:
            return None
        key = incoming_key(product.id)
        signature = upload_signature(settings.secret_key, request.state.user.id, key)
        back = f"{settings.public_url.rstrip('/')}/admin/products/{product.id}/images/uploaded?sig={signature}"
        return await storage.presign_form(key, back)

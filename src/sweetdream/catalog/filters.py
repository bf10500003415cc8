"""Parse the /products query string into a validated ProductFilter.

Rule: anything a shopper can type into the URL gets either a normalised view (unknown sort,
page out of range) or a clear 400 naming the field (a price that is not a whole number).

The default sort is "Best match": relevance when there is a query, newest first without one. One
default for both means the filter form's sort select needs no change when the shopper starts typing
a query (search-as-you-type ranks like the header search unless they chose another order).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from urllib.parse import urlencode

from sweetdream.platform.i18n import gettext as _
from sweetdream.platform.i18n import gettext_noop
from sweetdream.platform.parsing import clean_text, is_ascii_digits, parse_int, parse_page

SORTS = {
    "relevance": gettext_noop("Best match"),
    "newest": gettext_noop("Newest"),
    "price_asc": gettext_noop("Price: low to high"),
    "price_desc": gettext_noop("Price: high to low"),
    "name": gettext_noop("Name A-Z"),
}
MAX_QUERY_LENGTH = 100
MAX_PRICE = 1_000_000_000
DEFAULT_SORT = "relevance"


@dataclass(frozen=True)
class ProductFilter:
    q: str = ""
    category: str = ""
    size: str = ""
    min_price: int | None = None
    max_price: int | None = None
    in_stock: bool = False
    sort: str = DEFAULT_SORT
    page: int = 1

    def cache_key(self) -> str:
        return urlencode(self.params(include_page=True))

    def params(self, include_page: bool = False) -> dict[str, str]:
        """The non-default parameters, in a stable order: the canonical URL of this view."""
        out: dict[str, str] = {}
        if self.q:
            out["q"] = self.q
        if self.category:
            out["category"] = self.category
        if self.size:
            out["size"] = self.size
        if self.min_price is not None:
            out["min_price"] = str(self.min_price)
        if self.max_price is not None:
            out["max_price"] = str(self.max_price)
        if self.in_stock:
            out["in_stock"] = "1"
        if self.sort != DEFAULT_SORT:
            out["sort"] = self.sort
        if include_page and self.page > 1:
            out["page"] = str(self.page)
        return out

    def url(self, **changes: object) -> str:
        view = replace(self, **changes) if changes else self  # type: ignore[arg-type]
        query = urlencode(view.params(include_page=True))
        return "/products" + (f"?{query}" if query else "")


@dataclass
class FilterErrors:
    errors: dict[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.errors)


def _price(raw: str | None, name: str, errors: dict[str, str]) -> int | None:
    """A price as a shopper types it ("150.000", "150,000", " 150000 "), or an error for the field."""
    if raw is None or raw.strip() == "":
        return None
    text = raw.strip().replace(".", "").replace(",", "")
    value = parse_int(text, max_digits=len(str(MAX_PRICE)))
    if value is None and not is_ascii_digits(text):
        errors[name] = _("Enter a whole number of đồng, for example 150000.")
        return None
    if value is None or value > MAX_PRICE:
        errors[name] = _("That price is too large.")
        return None
    return value


def parse_filter(params: Mapping[str, str]) -> tuple[ProductFilter, FilterErrors]:
    errors: dict[str, str] = {}
    q = clean_text(params.get("q"), MAX_QUERY_LENGTH)
    min_price = _price(params.get("min_price"), "min_price", errors)
    max_price = _price(params.get("max_price"), "max_price", errors)
    if min_price is not None and max_price is not None and min_price > max_price:
        errors["max_price"] = _("The maximum price must be at least the minimum price.")
    sort = params.get("sort", "")
    if sort not in SORTS:
        sort = DEFAULT_SORT
    view = ProductFilter(
        q=q,
        category=clean_text(params.get("category"), 120),
        size=clean_text(params.get("size"), 40),
        min_price=min_price,
        max_price=max_price,
        in_stock=params.get("in_stock", "") in {"1", "on", "true"},
        sort=sort,
        page=parse_page(params.get("page")),
    )
    return view, FilterErrors(errors)

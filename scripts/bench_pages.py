"""The catalog scenario's signed-in shopper's order page (issue #13): an order placed through the
real checkout form, then the cart filled again so the cart and checkout pages still show a line."""

from __future__ import annotations

import re
from html import unescape

import httpx
from bench import Bench

HIDDEN = re.compile(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)"')
ORDER_LOCATION = re.compile(r"^/orders/SD-\d+$")
SIZE = re.compile(r'<option value="([0-9a-f-]{36})"(?![^>]*disabled)')


def shopper_order_path(bench: Bench, cookie: str, product_path: str) -> str:
    """Place an order for the shopper whose Cookie header is `cookie` (one item in their cart),
    put one of `product_path`'s sizes back in their cart, and return the order's path."""
    token = re.search(r"sd_csrf=([^;]+)", cookie)
    if token is None:
        raise RuntimeError("the shopper has no CSRF cookie")
    headers = {"cookie": cookie, "x-csrftoken": token.group(1)}
    with httpx.Client(base_url=bench.base_url, headers=headers, timeout=30.0) as client:
        page = client.get("/checkout/")
        if page.status_code != 200:
            raise RuntimeError(f"checkout page: {page.status_code}")
        form = {name: unescape(value) for name, value in HIDDEN.findall(page.text)}
        form |= {"name": "Bench Shopper", "phone": "0901234567", "address": "1 Lê Lợi, Quận 1, TP.HCM"}
        placed = client.post("/checkout/", data={**form, "payment_method": "COD"})
        location = placed.headers.get("location", "")
        if placed.status_code != 303 or not ORDER_LOCATION.match(location):
            raise RuntimeError(f"placing the order: {placed.status_code} {location}")
        size = SIZE.search(client.get(product_path).text)
        if size is None:
            raise RuntimeError(f"{product_path}: no size to buy")
        added = client.post(
            "/cart/items", data={"variant_id": size.group(1), "quantity": "1"}, headers={"hx-request": "true"}
        )
        if added.status_code != 200:
            raise RuntimeError(f"add to cart: {added.status_code}")
    return location

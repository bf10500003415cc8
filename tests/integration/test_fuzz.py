"""A deterministic slice of `make fuzz` (scripts/fuzz.py): 400 hostile requests over every route,
as a visitor, a shopper and an admin, through the real app. Not one may be a 5xx."""

from scripts.fuzz import discover_targets, fuzz_app

SEED = 9
REQUESTS = 400


def test_the_fuzzer_finds_every_route_and_the_templates_form_fields(app, settings):
    targets = {(t.method, t.path): t for t in discover_targets(app, settings.templates_dir)}
    assert {"name", "phone", "address", "note", "payment_method", "idempotency_key"} <= set(
        targets["POST", "/checkout"].fields
    )
    assert set(targets["POST", "/cart/items/{variant_id:str}"].fields) == {"quantity", "action"}
    assert {"q", "min_price", "max_price", "page"} <= set(targets["GET", "/products"].query)
    assert {"status", "page"} <= set(targets["GET", "/admin/orders"].query)
    assert ("POST", "/admin/orders/{number:str}/status") in targets


async def test_a_fuzz_slice_over_every_route_finds_no_server_error(app, settings):
    report = await fuzz_app(app, settings, REQUESTS, SEED)
    assert report.requests == REQUESTS
    assert report.server_errors == 0, report.summary()

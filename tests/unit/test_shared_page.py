"""A cached page shared by every shopper: the parts each fills in, and the cache key."""

from jinja2 import DictLoader, Environment

from sweetdream.platform import i18n
from sweetdream.platform.pages import SharedPage, page_key, per_shopper


def environment() -> Environment:
    env = Environment(
        loader=DictLoader(
            {
                "page.html": "<header>{{ per_shopper('badge.html') }}</header><main>{{ body }}</main>"
                "{{ per_shopper('flash.html') }}",
                "badge.html": "Cart {{ count }}",
                "flash.html": "<p>{{ message }}</p>",
            }
        ),
        autoescape=True,
    )
    env.globals["per_shopper"] = per_shopper
    return env


def test_a_normal_render_includes_each_part():
    page = environment().get_template("page.html").render(body="cakes", count=2, message="Hi")
    assert page == "<header>Cart 2</header><main>cakes</main><p>Hi</p>"


def test_a_shared_page_is_filled_in_with_each_shoppers_parts():
    import re

    from sweetdream.platform import pages

    body = environment().get_template("page.html").render(body="cakes", shared_page=True)
    pieces = tuple(re.split(pages._SLOTS, body))
    page = SharedPage(pieces, visitor="")
    assert page.parts == ("badge.html", "flash.html")
    assert page.fill({"badge.html": "Cart 3", "flash.html": ""}) == "<header>Cart 3</header><main>cakes</main>"
    assert page.fill({"badge.html": "Cart", "flash.html": "<p>Welcome</p>"}) == (
        "<header>Cart</header><main>cakes</main><p>Welcome</p>"
    )


def test_the_page_cache_key_names_the_language():
    with i18n.use_language("en"):
        english = page_key("layouts/full.html", "/products")
    with i18n.use_language("vi"):
        vietnamese = page_key("layouts/full.html", "/products")
    assert english == "page:en:layouts/full.html:/products"
    assert vietnamese == "page:vi:layouts/full.html:/products"

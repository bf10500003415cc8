from playwright.sync_api import Page

def test_probe(page: Page) -> None:
    page.goto("/products")
    with page.expect_response(lambda r: "min_price=abc" in r.url) as resp:
        page.locator("#min_price").fill("abc")
        page.locator("#min_price").press("Tab")
    print("STATUS", resp.value.status)
    page.wait_for_timeout(500)
    print("ERR", page.locator(".error").all_text_contents(), page.locator("#results").inner_text()[:80], page.url)

"""Product images: a presigned POST straight to S3 (moto's server), checked and recorded after the
browser reports it, thumbnailed by the worker; and the same steps against var/media with no bucket."""

from __future__ import annotations

import base64
import io
import json
import secrets
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import boto3
import httpx
import pytest
from litestar.testing import AsyncTestClient
from moto.server import ThreadedMotoServer
from PIL import Image
from sqlalchemy import select

from sweetdream.accounts.models import Role
from sweetdream.app import create_app
from sweetdream.audit.models import AuditEntry
from sweetdream.catalog.models import Product
from sweetdream.settings import Settings
from tests.integration.factories import make_product, make_user, signed_in
from tests.integration.helpers import csrf_token, post_form
from tests.support import drain_queue


def picture(kind: str = "PNG", size: tuple[int, int] = (1200, 800)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 120, 90)).save(out, kind)
    return out.getvalue()


@pytest.fixture
def moto_endpoint():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def bucket(moto_endpoint, monkeypatch, settings):
    """A bucket in moto, and the shop (web and worker: both read the environment) configured for it."""
    name = f"sweetdream-{secrets.token_hex(4)}"
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "S3_BUCKET": name,
        "S3_ENDPOINT_URL": moto_endpoint,
        "AWS_REGION": "ap-southeast-1",
    }.items():
        monkeypatch.setenv(key, value)
    s3 = boto3.client("s3", region_name="ap-southeast-1", endpoint_url=moto_endpoint)
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "ap-southeast-1"})
    return s3, name


async def admin_on(app, settings, db):
    client = AsyncTestClient(app=app, base_url="http://127.0.0.1")
    await client.__aenter__()
    client.follow_redirects = False
    await signed_in(client, settings, await make_user(db, Role.ADMIN))
    return client


async def test_an_image_goes_straight_to_s3_is_checked_recorded_and_thumbnailed(bucket, settings, db):
    s3, name = bucket
    app = create_app(Settings.from_env())
    product, _ = await make_product(db)
    client = await admin_on(app, settings, db)
    try:
        page = await client.get(f"/admin/products/{product.id}")
        assert 'data-mode="s3"' in page.text
        assert "img-src 'self' data: http://127.0.0.1" in page.headers["content-security-policy"]
        signed = await post_form(client, f"/admin/products/{product.id}/images/presign", {"content_type": "image/png"})
        assert signed.status_code == 201, signed.text
        form = signed.json()
        assert form["key"].startswith(f"media/products/{product.id}/") and form["key"].endswith(".png")
        # The browser's post to S3 (not through the app).
        async with httpx.AsyncClient() as browser:
            upload = await browser.post(
                form["url"], data=form["fields"], files={"file": ("cake.png", picture(), "image/png")}
            )
        assert upload.status_code in (200, 201, 204), upload.text
        recorded = await post_form(client, f"/admin/products/{product.id}/images", {"key": form["key"]})
        assert recorded.status_code == 303
        await drain_queue(settings.redis_url)
    finally:
        await client.__aexit__(None, None, None)
    fresh = await db.scalar(select(Product).where(Product.id == product.id).execution_options(populate_existing=True))
    assert fresh.images == [f"{s3.meta.endpoint_url}/{name}/{form['key']}"]
    thumb = s3.get_object(Bucket=name, Key=form["key"].removesuffix(".png") + "-400.webp")
    assert thumb["ContentType"] == "image/webp"
    with Image.open(io.BytesIO(thumb["Body"].read())) as image:
        assert image.format == "WEBP" and image.size == (400, 267)
    audit = await db.scalar(
        select(AuditEntry).where(AuditEntry.target_id == str(product.id), AuditEntry.action == "product.update")
    )
    assert audit.after == {"images": fresh.images}


async def test_the_app_refuses_to_record_what_is_not_an_allowed_upload(bucket, settings, db):
    s3, name = bucket
    app = create_app(Settings.from_env())
    product, _ = await make_product(db)
    other, _ = await make_product(db)
    client = await admin_on(app, settings, db)
    try:
        refused = await post_form(client, f"/admin/products/{product.id}/images/presign", {"content_type": "text/html"})
        assert refused.status_code == 400 and refused.json() == {"error": "Choose a JPEG, PNG or WebP image."}
        key = f"media/products/{product.id}/{secrets.token_hex(16)}.png"
        # Never uploaded:
        missing = await post_form(client, f"/admin/products/{product.id}/images", {"key": key})
        assert missing.status_code == 400 and "The upload did not arrive." in missing.text
        # Put there some other way, as something that is not an image type:
        s3.put_object(Bucket=name, Key=key, Body=b"<html>", ContentType="text/html")
        wrong = await post_form(client, f"/admin/products/{product.id}/images", {"key": key})
        assert wrong.status_code == 400 and "Choose a JPEG, PNG or WebP image." in wrong.text
        # Another product's key, or one outside media/products:
        s3.put_object(Bucket=name, Key=key, Body=picture(), ContentType="image/png")
        assert (await post_form(client, f"/admin/products/{other.id}/images", {"key": key})).status_code == 400
        outside = await post_form(client, f"/admin/products/{product.id}/images", {"key": "exports/x.png"})
        assert outside.status_code == 400
    finally:
        await client.__aexit__(None, None, None)
    fresh = await db.scalar(select(Product).where(Product.id == product.id).execution_options(populate_existing=True))
    assert fresh.images == []


async def test_the_presigned_policy_limits_the_type_and_the_size(bucket, settings, db):
    app = create_app(Settings.from_env())
    product, _ = await make_product(db)
    client = await admin_on(app, settings, db)
    try:
        signed = await post_form(client, f"/admin/products/{product.id}/images/presign", {"content_type": "image/jpeg"})
    finally:
        await client.__aexit__(None, None, None)
    policy = json.loads(base64.b64decode(signed.json()["fields"]["policy"]))
    assert {"Content-Type": "image/jpeg"} in policy["conditions"]
    assert ["content-length-range", 1, 5 * 1024 * 1024] in policy["conditions"]


async def test_without_a_bucket_a_plain_file_form_uploads_to_var_media(client, settings, db):
    product, _ = await make_product(db)
    await signed_in(client, settings, await make_user(db, Role.ADMIN))
    page = await client.get(f"/admin/products/{product.id}")
    assert 'data-mode="local"' in page.text and 'enctype="multipart/form-data"' in page.text
    url = f"/admin/products/{product.id}/images/upload"
    token = await csrf_token(client)
    answer = await client.post(
        url, data={"_csrf_token": token}, files={"image": ("../../etc/passwd.jpg", picture("JPEG"), "image/jpeg")}
    )
    assert answer.status_code == 303, answer.text
    await drain_queue(settings.redis_url)
    fresh = await db.scalar(select(Product).where(Product.id == product.id).execution_options(populate_existing=True))
    (image,) = fresh.images
    assert image.startswith(f"/media/products/{product.id}/") and image.endswith(".jpg")  # our name, not theirs
    served = await client.get(image)
    assert served.status_code == 200 and served.content == picture("JPEG")
    original = Path(settings.var_dir) / image.removeprefix("/")
    with Image.open(original.with_name(original.stem + "-400.webp")) as thumb:
        assert thumb.size == (400, 267)
    # Not an image, a lie about its type, too big: refused, nothing written.
    for name, body, kind in [
        ("x.png", b"<script>alert(1)</script>", "image/png"),
        ("x.gif", picture("GIF"), "image/gif"),
        ("big.png", picture("PNG") + b"\0" * (5 * 1024 * 1024), "image/png"),
    ]:
        refused = await client.post(url, data={"_csrf_token": token}, files={"image": (name, body, kind)})
        assert refused.status_code == 400, name
    assert (await client.post(url, data={"_csrf_token": token})).status_code == 400  # no file at all
    fresh = await db.scalar(select(Product).where(Product.id == product.id).execution_options(populate_existing=True))
    assert fresh.images == [image]
    assert (await post_form(client, f"/admin/products/{product.id}/images", {"key": "../../secret"})).status_code == 400


async def test_after_the_thumbnail_job_the_grid_shows_the_thumbnail_and_the_product_page_the_image(
    client, settings, db
):
    product, _ = await make_product(db)
    shopper = AsyncTestClient(app=create_app(settings), base_url="http://127.0.0.1")
    async with shopper:
        listing = f"/products?q={product.name.replace(' ', '+')}"
        assert 'src="/static/img/placeholder.svg"' in (await shopper.get(listing)).text  # cached now, no image
        await signed_in(client, settings, await make_user(db, Role.ADMIN))
        token = await csrf_token(client)
        answer = await client.post(
            f"/admin/products/{product.id}/images/upload",
            data={"_csrf_token": token},
            files={"image": ("cake.png", picture("PNG"), "image/png")},
        )
        assert answer.status_code == 303, answer.text
        fresh = await db.scalar(
            select(Product).where(Product.id == product.id).execution_options(populate_existing=True)
        )
        (image,) = fresh.images
        assert f'src="{image}"' in (await shopper.get(listing)).text  # before the job: the full image
        await drain_queue(settings.redis_url)  # a real ARQ worker makes the thumbnail and records it
        thumbnail = image.removesuffix(".png") + "-400.webp"
        grid = await shopper.get(listing)
        assert f'src="{thumbnail}"' in grid.text and f'src="{image}"' not in grid.text
        assert (await shopper.get(thumbnail)).status_code == 200
        page = (await shopper.get(f"/products/{product.slug}")).text
        assert f'src="{image}"' in page  # the product page keeps the full image
    fresh = await db.scalar(select(Product).where(Product.id == product.id).execution_options(populate_existing=True))
    assert fresh.thumbnails == {image: thumbnail}


async def test_demo_products_with_static_images_keep_them_in_the_grid(client):
    grid = (await client.get("/products?q=macaron")).text
    assert 'src="/static/img/products/lop-hoc-lam-macaron.svg"' in grid


# --- without JavaScript: the page's form is the presigned POST, S3 sends the admin back ---------


class _FormFields(HTMLParser):
    """The action and fields of the page's image form, in document order, as a browser sends them."""

    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: list[tuple[str, str, str]] = []  # (type, name, value)
        self._inside = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {name: value or "" for name, value in attrs}
        if tag == "form" and found.get("id") == "image-upload":
            self._inside, self.action = True, found["action"]
        elif tag == "input" and self._inside:
            self.fields.append((found.get("type", "text"), found.get("name", ""), found.get("value", "")))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._inside = False


async def image_form(client, product_id) -> _FormFields:
    page = await client.get(f"/admin/products/{product_id}")
    assert page.status_code == 200, page.text
    form = _FormFields()
    form.feed(page.text)
    return form


async def post_to_s3(form: _FormFields, body: bytes, kind: str = "image/jpeg") -> httpx.Response:
    """What the browser does with the plain form: every hidden field, then the file (not followed)."""
    hidden = {name: value for type_, name, value in form.fields if type_ == "hidden"}
    async with httpx.AsyncClient() as browser:
        return await browser.post(form.action, data=hidden, files={"file": ("cake.jpg", body, kind)})


def back_to_app(location: str) -> str:
    """The app's part of the address S3 redirects to (the test client has its own host)."""
    assert location.startswith("http://127.0.0.1:8000/"), location  # PUBLIC_URL of the test settings
    return location.removeprefix("http://127.0.0.1:8000")


async def test_without_javascript_the_form_posts_to_s3_which_sends_the_admin_back_to_record_it(
    bucket, moto_endpoint, settings, db
):
    s3, name = bucket
    app = create_app(Settings.from_env())
    product, _ = await make_product(db)
    admin = await make_user(db, Role.ADMIN)
    client = AsyncTestClient(app=app, base_url="http://127.0.0.1")
    await client.__aenter__()
    client.follow_redirects = False
    await signed_in(client, settings, admin)
    try:
        form = await image_form(client, product.id)
        assert form.action == f"{moto_endpoint}/{name}"
        policy_header = (await client.get(f"/admin/products/{product.id}")).headers["content-security-policy"]
        assert f"form-action 'self' {moto_endpoint}/{name};" in policy_header  # the browser may post the form there
        types = [type_ for type_, _, _ in form.fields]
        names = [field for _, field, _ in form.fields]
        assert types[-1] == "file" and names[-1] == "file"  # S3 reads fields up to the file only
        assert "_csrf_token" not in names  # S3 refuses a field its policy does not name (and it is ours)
        hidden = {field: value for type_, field, value in form.fields if type_ == "hidden"}
        assert hidden["key"].startswith(f"media/incoming/{product.id}/")
        policy = json.loads(base64.b64decode(hidden["policy"]))
        assert ["content-length-range", 1, 5 * 1024 * 1024] in policy["conditions"]
        assert {"success_action_redirect": hidden["success_action_redirect"]} in policy["conditions"]
        assert hidden["success_action_redirect"].startswith(
            f"http://127.0.0.1:8000/admin/products/{product.id}/images/uploaded?sig="
        )

        sent = await post_to_s3(form, picture("JPEG"), "image/jpeg")
        assert sent.status_code == 303, sent.text  # moto honours success_action_redirect
        back = back_to_app(sent.headers["location"])
        assert f"bucket={name}" in back and "key=media%2Fincoming%2F" in back  # (moto adds no etag)

        recorded = await client.get(back)
        assert recorded.status_code == 303, recorded.text
        assert recorded.headers["location"] == f"/admin/products/{product.id}#images"
        shown = await client.get(recorded.headers["location"])
        assert "Image added." in shown.text

        again = await client.get(back)  # a reload of S3's redirect records nothing twice
        assert again.status_code == 400 and "The upload did not arrive." in again.text
        await drain_queue(settings.redis_url)
    finally:
        await client.__aexit__(None, None, None)
    fresh = await db.scalar(select(Product).where(Product.id == product.id).execution_options(populate_existing=True))
    (image,) = fresh.images
    assert image.startswith(f"{moto_endpoint}/{name}/media/products/{product.id}/") and image.endswith(".jpg")
    key = image.removeprefix(f"{moto_endpoint}/{name}/")
    assert s3.head_object(Bucket=name, Key=key)["ContentType"] == "image/jpeg"  # its real type, read by Pillow
    assert s3.list_objects_v2(Bucket=name, Prefix="media/incoming/")["KeyCount"] == 0  # moved, not copied
    assert s3.head_object(Bucket=name, Key=key.removesuffix(".jpg") + "-400.webp")["ContentType"] == "image/webp"
    (audit,) = (
        await db.scalars(
            select(AuditEntry).where(AuditEntry.target_id == str(product.id), AuditEntry.action == "product.update")
        )
    ).all()
    assert audit.after == {"images": [image]}
    assert (audit.actor_id, audit.actor_email) == (admin.id, admin.email)


async def test_the_redirect_refuses_what_is_not_this_admins_allowed_upload_and_records_nothing(bucket, settings, db):
    s3, name = bucket
    app = create_app(Settings.from_env())
    product, _ = await make_product(db)
    other, _ = await make_product(db)
    client = await admin_on(app, settings, db)
    url = f"/admin/products/{product.id}/images/uploaded"

    async def signed_address(product_id) -> tuple[str, str]:
        """The key and signature a fresh page of this product's form carries."""
        hidden = {field: value for type_, field, value in (await image_form(client, product_id)).fields}
        return hidden["key"], parse_qs(urlsplit(hidden["success_action_redirect"]).query)["sig"][0]

    async def report(key: str, sig: str, bucket_name: str = name) -> httpx.Response:
        return await client.get(url, params={"bucket": bucket_name, "key": key, "etag": '"x"', "sig": sig})

    try:
        key, sig = await signed_address(product.id)
        missing = await report(key, sig)  # never uploaded
        assert missing.status_code == 400 and "The upload did not arrive." in missing.text

        s3.put_object(Bucket=name, Key=key, Body=b"<html>", ContentType="image/jpeg")  # says image, is not
        wrong = await report(key, sig)
        assert wrong.status_code == 400 and "not an image" in wrong.text
        assert s3.list_objects_v2(Bucket=name, Prefix=key)["KeyCount"] == 0  # a refused upload is deleted

        key, sig = await signed_address(product.id)
        s3.put_object(Bucket=name, Key=key, Body=picture("GIF"), ContentType="image/gif")
        gif = await report(key, sig)
        assert gif.status_code == 400 and "not a JPEG, PNG or WebP image" in gif.text

        key, sig = await signed_address(product.id)
        s3.put_object(Bucket=name, Key=key, Body=picture("PNG") + b"\0" * (5 * 1024 * 1024))  # past the policy
        big = await report(key, sig)
        assert big.status_code == 400 and "Images may be at most 5 MB." in big.text

        # A good image, but: another product's key, a forged signature, another bucket, a key of ours
        # outside the incoming prefix.
        other_key, other_sig = await signed_address(other.id)
        s3.put_object(Bucket=name, Key=other_key, Body=picture("PNG"))
        for refused in (
            await report(other_key, other_sig),
            await report(other_key, sig),
            await report(key.replace(key[-32:], other_key[-32:]), sig),
        ):
            assert refused.status_code == 400 and "That upload is not for this product." in refused.text
        key, sig = await signed_address(product.id)
        s3.put_object(Bucket=name, Key=key, Body=picture("PNG"))
        for refused in (
            await report(key, "0" * 32),
            await report(key, "đ" * 32),
            await report(key, ""),
            await report(key, sig, bucket_name="someone-elses"),
            await report(f"media/products/{product.id}/{'a' * 32}.png", sig),
        ):
            assert refused.status_code == 400 and "That upload is not for this product." in refused.text

        # Another admin cannot complete this admin's upload with the address S3 would send them to.
        await signed_in(client, settings, await make_user(db, Role.ADMIN))
        taken = await report(key, sig)
        assert taken.status_code == 400 and "That upload is not for this product." in taken.text
    finally:
        await client.__aexit__(None, None, None)
    for each in (product, other):
        fresh = await db.scalar(select(Product).where(Product.id == each.id).execution_options(populate_existing=True))
        assert fresh.images == []
    audited = await db.scalars(select(AuditEntry).where(AuditEntry.target_id.in_([str(product.id), str(other.id)])))
    assert audited.all() == []


async def test_the_redirect_is_for_admins_only(bucket, settings, db):
    app = create_app(Settings.from_env())
    product, _ = await make_product(db)
    url = f"/admin/products/{product.id}/images/uploaded?bucket=b&key=k&sig=s"
    async with AsyncTestClient(app=app, base_url="http://127.0.0.1") as client:
        client.follow_redirects = False
        visitor = await client.get(url)
        assert visitor.status_code in (302, 303) and "/account/login" in visitor.headers["location"]
        await signed_in(client, settings, await make_user(db))
        assert (await client.get(url)).status_code == 403


async def test_without_a_bucket_there_is_no_s3_redirect_to_come_back_to(client, settings, db):
    product, _ = await make_product(db)
    await signed_in(client, settings, await make_user(db, Role.ADMIN))
    answer = await client.get(f"/admin/products/{product.id}/images/uploaded?bucket=b&key=k&sig=s")
    assert answer.status_code == 404

"""Product images: a presigned POST straight to S3 (moto's server), checked and recorded after the
browser reports it, thumbnailed by the worker; and the same steps against var/media with no bucket."""

from __future__ import annotations

import base64
import io
import json
import secrets
from pathlib import Path

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

"""Product images: uploaded by the browser straight to storage, checked, recorded, thumbnailed.

With `S3_BUCKET` set, the admin's browser asks for a presigned POST (`presign`: the policy allows
only image/jpeg, image/png or image/webp, at most MAX_BYTES, at one key under `media/products/`),
posts the file to S3 itself, then tells the app, which checks the object with a HEAD (it exists,
its size and type are allowed) before recording it on the product. Without JavaScript the page's
form is itself a presigned POST (`presign_form`): any file up to MAX_BYTES, to a key under
`media/incoming/`, and S3 sends the browser back (`success_action_redirect`) to an address signed
for this admin and key; the app then reads the object (`adopt_incoming`: HEAD, GET, Pillow) and
moves it to its key named by its real type. Without a bucket (development),
the same steps run against the app's own upload endpoint, which writes under `var/media/` (served
at `/media/`) after checking the size, the type and that Pillow can read the file as an image.
A worker job (`thumbnail`) then writes a 400 px WebP next to the original (`<key>-400.webp`) and
records it on the product (`products.thumbnails`, catalog/services.py `record_thumbnail`), so the
shop's grid cards load it instead of the full image from the next request.
boto3 and Pillow are blocking: they run in a thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

from sweetdream.platform.i18n import gettext_noop
from sweetdream.settings import Settings

MAX_BYTES = 5 * 1024 * 1024
CONTENT_TYPES = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}
PIL_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
THUMBNAIL_PX = 400
PRESIGN_SECONDS = 600
FORM_SECONDS = 3600  # a plain form on an open page: an hour to choose the file
_KEY = re.compile(r"^media/products/[0-9a-f-]{36}/[0-9a-f]{32}\.(jpg|png|webp)$")
# Where a plain form's upload lands before its type is known (an S3 lifecycle rule may expire the prefix).
INCOMING_PREFIX = "media/incoming/"
_INCOMING = re.compile(r"^media/incoming/([0-9a-f-]{36})/[0-9a-f]{32}$")


class ImageRefused(ValueError):
    """An upload that is not a usable image (too big, wrong type, missing, unreadable)."""


@dataclass(frozen=True)
class Presigned:
    url: str
    fields: dict[str, str]
    key: str


def new_key(product_id: UUID, content_type: str) -> str:
    """Where an upload goes: named by us (never by the uploader's file name)."""
    return f"media/products/{product_id}/{uuid.uuid4().hex}.{CONTENT_TYPES[content_type]}"


def is_key_for(key: str, product_id: UUID) -> bool:
    return bool(_KEY.match(key)) and key.split("/")[2] == str(product_id)


def product_of(key: str) -> UUID | None:
    """The product an upload's key belongs to (keys are named `media/products/<product id>/...`)."""
    if not _KEY.match(key):
        return None
    return UUID(key.split("/")[2])


def incoming_key(product_id: UUID) -> str:
    """Where a plain form's upload goes: its type is read after it arrives, then it moves to `new_key`."""
    return f"{INCOMING_PREFIX}{product_id}/{uuid.uuid4().hex}"


def is_incoming_key_for(key: str, product_id: UUID) -> bool:
    match = _INCOMING.match(key)
    return match is not None and match.group(1) == str(product_id)


def upload_signature(secret: str, user_id: UUID, key: str) -> str:
    """Signs the address S3 sends the browser back to: only the admin the form was made for can
    have that key recorded (a stranger's link to it, with any key, is refused)."""
    message = f"product-image:{user_id}:{key}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()[:32]


def upload_signature_ok(secret: str, user_id: UUID, key: str, signature: str) -> bool:
    # As bytes: compare_digest refuses a str with non-ASCII characters (a hostile link may carry any).
    return hmac.compare_digest(upload_signature(secret, user_id, key).encode(), signature.encode())


def thumbnail_key(key: str) -> str:
    return key.rsplit(".", 1)[0] + f"-{THUMBNAIL_PX}.webp"


def make_thumbnail(data: bytes) -> bytes:
    """A WebP at most THUMBNAIL_PX on its longer side."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        image.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
        out = io.BytesIO()
        image.convert("RGBA" if image.mode in ("RGBA", "LA", "P") else "RGB").save(out, "WEBP", quality=82)
        return out.getvalue()


def image_type(data: bytes) -> str:
    """The content type Pillow reads the bytes as, or ImageRefused if they are not an allowed image."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            kind = PIL_FORMATS.get(image.format or "")
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageRefused(gettext_noop("not an image")) from exc
    if kind is None:
        raise ImageRefused(gettext_noop("not a JPEG, PNG or WebP image"))
    return kind


class ImageStorage:
    """S3 when a bucket is configured, else files under var/media (the same steps either way)."""

    def __init__(self, settings: Settings) -> None:
        self.bucket = settings.s3_bucket
        self.endpoint_url = settings.s3_endpoint_url or None
        self.region = settings.aws_region
        self.root = settings.var_dir / "media"
        self.media_url = (settings.media_url or self._default_media_url()).rstrip("/")

    @property
    def uses_s3(self) -> bool:
        return bool(self.bucket)

    def _default_media_url(self) -> str:
        if not self.bucket:
            return "/media"
        if self.endpoint_url:
            return f"{self.endpoint_url.rstrip('/')}/{self.bucket}"
        return f"https://{self.bucket}.s3.{self.region}.amazonaws.com"

    def url_for(self, key: str) -> str:
        """The address shoppers load the image from."""
        if not self.bucket:
            return f"{self.media_url}/{key.removeprefix('media/')}"
        return f"{self.media_url}/{key}"

    @property
    def upload_origin(self) -> str:
        """Where browsers post uploads (S3's regional address, or the configured endpoint's bucket)."""
        if not self.bucket:
            return ""
        if self.endpoint_url:
            return f"{self.endpoint_url.rstrip('/')}/{self.bucket}"
        return f"https://{self.bucket}.s3.{self.region}.amazonaws.com"

    def _client(self) -> Any:
        import boto3
        from botocore.config import Config

        # Virtual-hosted, regional addresses on AWS: presigned POSTs go to `upload_origin` (the CSP's).
        config = None if self.endpoint_url else Config(s3={"addressing_style": "virtual"})
        return boto3.client("s3", region_name=self.region, endpoint_url=self.endpoint_url, config=config)

    # --- the browser's upload --------------------------------------------------------------------

    async def presign(self, product_id: UUID, content_type: str, local_url: str) -> Presigned:
        if content_type not in CONTENT_TYPES:
            raise ImageRefused(gettext_noop("Choose a JPEG, PNG or WebP image."))
        key = new_key(product_id, content_type)
        if not self.bucket:
            return Presigned(local_url, {"key": key, "Content-Type": content_type}, key)

        def sign() -> dict[str, Any]:
            return self._client().generate_presigned_post(
                self.bucket,
                key,
                Fields={"Content-Type": content_type},
                Conditions=[
                    {"Content-Type": content_type},
                    ["content-length-range", 1, MAX_BYTES],
                ],
                ExpiresIn=PRESIGN_SECONDS,
            )

        signed = await asyncio.to_thread(sign)
        return Presigned(signed["url"], dict(signed["fields"]), key)

    async def presign_form(self, key: str, redirect: str) -> Presigned:
        """A presigned POST for a plain HTML form (no script): any file of 1 byte to MAX_BYTES at
        `key` (an `incoming_key`); on success S3 sends the browser to `redirect` (a 303, with
        `bucket`, `key` and `etag` added to its query)."""

        def sign() -> dict[str, Any]:
            return self._client().generate_presigned_post(
                self.bucket,
                key,
                Fields={"success_action_redirect": redirect},
                Conditions=[{"success_action_redirect": redirect}, ["content-length-range", 1, MAX_BYTES]],
                ExpiresIn=FORM_SECONDS,
            )

        signed = await asyncio.to_thread(sign)
        return Presigned(signed["url"], dict(signed["fields"]), key)

    async def adopt_incoming(self, incoming: str, product_id: UUID) -> str:
        """A plain form's upload, after S3's redirect: it must exist and be 1 byte to MAX_BYTES
        (HEAD), and Pillow must read it as a JPEG, PNG or WebP (GET: a form cannot say the type).
        It moves to its own key (`new_key`), stored with its real type; a refused one is deleted.
        Returns the new key."""
        from botocore.exceptions import ClientError

        def run() -> str:
            client = self._client()
            try:
                meta = client.head_object(Bucket=self.bucket, Key=incoming)
            except ClientError as exc:
                raise ImageRefused(gettext_noop("The upload did not arrive.")) from exc
            try:
                if not 0 < int(meta.get("ContentLength", 0)) <= MAX_BYTES:
                    raise ImageRefused(gettext_noop("Images may be at most 5 MB."))
                kind = image_type(client.get_object(Bucket=self.bucket, Key=incoming)["Body"].read())
            except ImageRefused:
                client.delete_object(Bucket=self.bucket, Key=incoming)
                raise
            key = new_key(product_id, kind)
            client.copy_object(
                Bucket=self.bucket,
                Key=key,
                CopySource={"Bucket": self.bucket, "Key": incoming},
                ContentType=kind,
                MetadataDirective="REPLACE",
            )
            client.delete_object(Bucket=self.bucket, Key=incoming)
            return key

        return await asyncio.to_thread(run)

    async def check_uploaded(self, key: str) -> str:
        """The object the browser says it uploaded: it must exist, be at most MAX_BYTES and of an
        allowed type (HEAD; the file on disk in local mode). Returns its content type."""
        if not self.bucket:
            path = self._path(key)
            if not path.is_file():
                raise ImageRefused(gettext_noop("The upload did not arrive."))
            data = await asyncio.to_thread(path.read_bytes)
            return image_type(data)

        def head() -> dict[str, Any]:
            from botocore.exceptions import ClientError

            try:
                return self._client().head_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                raise ImageRefused(gettext_noop("The upload did not arrive.")) from exc

        meta = await asyncio.to_thread(head)
        if int(meta.get("ContentLength", 0)) > MAX_BYTES or int(meta.get("ContentLength", 0)) == 0:
            raise ImageRefused(gettext_noop("Images may be at most 5 MB."))
        kind = str(meta.get("ContentType", ""))
        if kind not in CONTENT_TYPES:
            raise ImageRefused(gettext_noop("Choose a JPEG, PNG or WebP image."))
        return kind

    async def save_local(self, key: str, data: bytes) -> None:
        """The development upload endpoint's write: checked first, never over another file."""
        if len(data) > MAX_BYTES:
            raise ImageRefused(gettext_noop("Images may be at most 5 MB."))
        kind = image_type(data)
        if CONTENT_TYPES[kind] != key.rsplit(".", 1)[1]:
            raise ImageRefused(gettext_noop("The file is not the type it says it is."))
        path = self._path(key)

        def write() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("xb") as out:
                out.write(data)

        await asyncio.to_thread(write)

    # --- the worker's thumbnail ------------------------------------------------------------------

    async def write_thumbnail(self, key: str) -> str:
        """Make `<key>-400.webp` next to the original (again: the same bytes, so running twice is harmless)."""
        target = thumbnail_key(key)
        if not self.bucket:
            path = self._path(key)
            data = await asyncio.to_thread(path.read_bytes)
            thumb = await asyncio.to_thread(make_thumbnail, data)
            await asyncio.to_thread(self._path(target).write_bytes, thumb)
            return target

        def run() -> None:
            client = self._client()
            data = client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            client.put_object(Bucket=self.bucket, Key=target, Body=make_thumbnail(data), ContentType="image/webp")

        await asyncio.to_thread(run)
        return target

    def _path(self, key: str) -> Path:
        if not _KEY.match(key) and not key.endswith(f"-{THUMBNAIL_PX}.webp"):
            raise ImageRefused(gettext_noop("Not an upload of ours."))
        path = (self.root / key.removeprefix("media/")).resolve()
        if self.root.resolve() not in path.parents:
            raise ImageRefused(gettext_noop("Not an upload of ours."))
        return path

"""Uploading screenshots through the chat page's endpoint, hostile files included."""

from __future__ import annotations

import io
import re
import struct
import zlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from assistant.models import Upload
from audit.models import AuditEvent

from . import screens

pytestmark = pytest.mark.django_db


def post_image(client, data: bytes, name="shot.png", content_type="image/png"):
    return client.post(
        "/uploads/", {"image": SimpleUploadedFile(name, data, content_type=content_type)}
    )


def test_upload_stores_sanitised_copies_under_random_names(owner_client, orders_png, media_root):
    response = post_image(owner_client, orders_png, name="../../etc/passwd.png")
    assert response.status_code == 201, response.content
    body = response.json()
    upload = Upload.objects.get(pk=body["id"])
    assert (body["width"], body["height"]) == (1280, 800)
    for relative in (upload.original, upload.model_copy):
        path = media_root / relative
        assert path.is_file()
        assert "passwd" not in relative and "shot" not in relative
        # Random lowercase base32 under uploads/: no '-' or '.' to start, no case twins.
        folder, name = relative.split("/")
        assert folder == "uploads" and re.fullmatch(r"[a-z2-7]{32}\.(png|jpg|webp|gif)", name)
    # The model copy fits the budget (longest side 1024 by default), the original does not shrink.
    with Image.open(media_root / upload.model_copy) as model_copy:
        assert max(model_copy.size) == 1024
    with Image.open(media_root / upload.original) as original:
        assert original.size == (1280, 800)
    assert AuditEvent.objects.filter(action="upload.create", object_id=str(upload.pk)).exists()


def test_upload_served_only_to_its_owner(owner_client, outsider_client, client, orders_png):
    upload_id = post_image(owner_client, orders_png).json()["id"]
    response = owner_client.get(f"/uploads/{upload_id}/image")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert "sandbox" in response["Content-Security-Policy"]
    assert outsider_client.get(f"/uploads/{upload_id}/image").status_code == 404
    assert client.get(f"/uploads/{upload_id}/image").status_code == 302  # to the login page


def test_anonymous_upload_gets_json_401(client, orders_png):
    response = post_image(client, orders_png)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares huge dimensions but carries almost no pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


HOSTILE = {
    "empty": b"",
    "text": b"hello, this is not an image at all",
    "svg": b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
    "html_named_png": b"<!doctype html><html><body><script>alert(1)</script></body></html>",
    "pdf": b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF",
    "truncated_png": screens.png_bytes()[:400],
    "bomb": _png_header_only(60000, 60000),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_uploads_get_clear_4xx(owner_client, name, media_root):
    response = post_image(owner_client, HOSTILE[name])
    assert 400 <= response.status_code < 500, (name, response.status_code)
    error = response.json()["error"]
    assert error["message"] and error["code"]
    assert not Upload.objects.exists()
    # Nothing half-written stays on disk either.
    assert not list(media_root.rglob("*.*"))


def test_missing_file_field(owner_client):
    response = owner_client.post("/uploads/", {})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "no_file"


def test_oversized_upload_is_413(owner_client, settings):
    settings.UPLOAD_MAX_BYTES = 50_000
    response = post_image(owner_client, screens.png_bytes() + b"\0" * 60_000)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"


def test_gps_exif_is_stripped_and_orientation_applied(owner_client, media_root):
    image = Image.new("RGB", (200, 100), "white")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
    exif[0x8825] = {1: "N", 2: (39.0, 54.0, 20.0), 3: "E", 4: (116.0, 23.0, 29.0)}  # GPS
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif)
    response = post_image(
        owner_client, buffer.getvalue(), name="photo.jpg", content_type="image/jpeg"
    )
    assert response.status_code == 201, response.content
    upload = Upload.objects.get(pk=response.json()["id"])
    with Image.open(media_root / upload.original) as stored:
        assert stored.size == (100, 200)  # orientation applied
        stored_exif = stored.getexif()
        assert 0x8825 not in stored_exif and 0x0112 not in stored_exif
        assert b"GPS" not in (stored.info.get("exif") or b"")


def test_model_copy_budget_and_document_enhancement_follow_the_settings(
    owner_client, media_root, settings
):
    """The operator's settings reach the stored model copy through the upload endpoint:
    a smaller longest side, and deskew plus contrast normalisation for photographed
    pages (off by default)."""
    import numpy as np

    from assistant.safety.images import estimate_skew

    from .safety.test_images import encode, prose_page

    page = np.asarray(prose_page().convert("L"), dtype=np.float64)
    shadow = np.linspace(0.35, 0.8, page.shape[1])[None, :]
    dim = encode(Image.fromarray(((page * 0.25 + 100) * shadow).astype(np.uint8)), "PNG")
    tilted = encode(prose_page().rotate(3, expand=True, fillcolor="white"), "PNG")

    def model_copy(photo, **overrides):
        for name, value in overrides.items():
            setattr(settings, name, value)
        response = post_image(owner_client, photo)
        assert response.status_code == 201, response.content
        upload = Upload.objects.get(pk=response.json()["id"])
        with Image.open(media_root / upload.model_copy) as image:
            return image.convert("L")

    settings.IMAGE_MODEL_LONGEST_SIDE = 640
    plain = model_copy(tilted, IMAGE_ENHANCE_DOCUMENTS=False)
    straightened = model_copy(tilted, IMAGE_ENHANCE_DOCUMENTS=True)
    assert max(plain.size) == 640 and max(straightened.size) == 640
    assert estimate_skew(plain) == 3.0 and abs(estimate_skew(straightened)) <= 0.3

    flat = np.asarray(model_copy(dim, IMAGE_ENHANCE_DOCUMENTS=False), dtype=np.float64)
    lifted = np.asarray(model_copy(dim, IMAGE_ENHANCE_DOCUMENTS=True), dtype=np.float64)
    assert lifted.std() > 2 * flat.std()

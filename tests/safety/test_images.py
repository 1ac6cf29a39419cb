"""Upload sanitising: a catalogue of hostile and awkward inputs, each with its safe outcome.

Every image is made here with Pillow or a few crafted bytes; there are no binary fixtures.
"""

from __future__ import annotations

import gzip
import io
import re
import struct
import time
import warnings
import zlib
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageDraw, ImageFile, PngImagePlugin

from assistant.safety.images import (
    ImageRejected,
    estimate_skew,
    new_storage_name,
    prepare_for_model,
    sanitise_upload,
)

# --- makers -------------------------------------------------------------------------------


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def screenshot(size: tuple[int, int] = (64, 48), mode: str = "RGB") -> Image.Image:
    """Deterministic non-flat content, so truncation and pixel checks mean something."""
    rng = np.random.default_rng(7)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels).convert(mode)


def png_chunk(tag: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(tag + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)


def raw_png(
    width: int, height: int, *, bit_depth: int = 8, color_type: int = 2, idat: bytes | None = None
) -> bytes:
    """A PNG written by hand: for headers that lie and for formats Pillow will not write."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    if idat is None:
        idat = zlib.compress(b"\x00" * 16)  # far less data than the header promises
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def png_chunk_types(data: bytes) -> list[bytes]:
    types, pos = [], 8
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        types.append(data[pos + 4 : pos + 8])
        pos += 12 + length
    return types


def jpeg_with_dimensions(width: int, height: int) -> bytes:
    data = bytearray(encode(screenshot((16, 16)), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def gif_with_screen(width: int, height: int) -> bytes:
    data = bytearray(encode(screenshot((16, 16), "P"), "GIF"))
    data[6:10] = struct.pack("<HH", width, height)
    return bytes(data)


def truncated(data: bytes, fraction: float = 0.6) -> bytes:
    return data[: int(len(data) * fraction)]


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


# --- refused --------------------------------------------------------------------------------

SVG_SCRIPT = (
    b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(document.cookie)</script></svg>'
)
SVG_XXE = (
    b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    b'<svg xmlns="http://www.w3.org/2000/svg"><text>&xxe;</text></svg>'
)

REFUSED: list = [
    pytest.param(lambda: b"", "empty", id="zero-bytes"),
    pytest.param(
        lambda: raw_png(100_000, 100_000), "decompression_bomb", id="png-bomb-header-100k"
    ),
    pytest.param(lambda: raw_png(50_000, 50_000), "decompression_bomb", id="png-50k-x-50k"),
    pytest.param(lambda: raw_png(16_000, 16_000), "decompression_bomb", id="png-over-pixel-budget"),
    pytest.param(lambda: raw_png(20_000, 10), "decompression_bomb", id="png-side-over-16384"),
    pytest.param(
        lambda: jpeg_with_dimensions(60_000, 60_000), "decompression_bomb", id="jpeg-huge-sof"
    ),
    pytest.param(
        lambda: gif_with_screen(65_535, 65_535), "decompression_bomb", id="gif-huge-screen"
    ),
    pytest.param(lambda: truncated(encode(screenshot(), "PNG")), "truncated", id="png-truncated"),
    pytest.param(
        lambda: truncated(encode(screenshot(), "PNG"), 0.95), "truncated", id="png-truncated-late"
    ),
    pytest.param(lambda: truncated(encode(screenshot(), "JPEG")), "truncated", id="jpeg-truncated"),
    pytest.param(
        lambda: truncated(encode(screenshot(), "JPEG", progressive=True)),
        "truncated",
        id="jpeg-progressive-truncated",
    ),
    pytest.param(
        lambda: truncated(encode(screenshot(mode="P"), "GIF")), "truncated", id="gif-truncated"
    ),
    pytest.param(
        lambda: truncated(encode(screenshot(), "WEBP", lossless=True)),
        "truncated",
        id="webp-truncated",
    ),
    pytest.param(
        lambda: b"\x89PNG\r\n\x1a\n" + b"garbage" * 20, "corrupt", id="png-magic-then-garbage"
    ),
    pytest.param(
        lambda: b"\xff\xd8\xff\xe0" + b"\x00" * 100, "corrupt", id="jpeg-magic-then-zeros"
    ),
    pytest.param(
        lambda: b"GIF89a=1;alert(document.domain)//" + b"\x00" * 40,
        "corrupt",
        id="polyglot-gif-js-broken",
    ),
    pytest.param(lambda: SVG_SCRIPT, "svg_not_allowed", id="svg-script"),
    pytest.param(lambda: SVG_XXE, "svg_not_allowed", id="svg-xxe-entities"),
    pytest.param(lambda: gzip.compress(SVG_SCRIPT), "svg_not_allowed", id="svgz"),
    pytest.param(
        lambda: b"\xef\xbb\xbf\n  <!-- hi -->\n" + SVG_SCRIPT,
        "svg_not_allowed",
        id="svg-bom-comment",
    ),
    pytest.param(lambda: SVG_SCRIPT.decode().encode("utf-16"), "svg_not_allowed", id="svg-utf16"),
    pytest.param(
        lambda: b"<!DOCTYPE html><html><body><script>alert(1)</script>",
        "not_an_image",
        id="html-as-png",
    ),
    pytest.param(
        lambda: b"%PDF-1.7\n1 0 obj<</Type/Catalog>>endobj\n%%EOF", "not_an_image", id="pdf"
    ),
    pytest.param(lambda: b"just some text, named screenshot.png", "not_an_image", id="text"),
    pytest.param(lambda: b"PK\x03\x04" + b"\x00" * 60, "not_an_image", id="zip"),
    pytest.param(
        lambda: gzip.compress(b"\x00" * 20_000_000, 1), "not_an_image", id="gzip-bomb-not-svg"
    ),
    pytest.param(lambda: encode(screenshot(), "BMP"), "unsupported_format", id="bmp"),
    pytest.param(lambda: encode(screenshot(), "TIFF"), "unsupported_format", id="tiff"),
    pytest.param(lambda: encode(screenshot((32, 32)), "ICO"), "unsupported_format", id="ico"),
    pytest.param(
        lambda: b"\x00\x00\x00\x18ftypheic" + b"\x00" * 64, "unsupported_format", id="heic"
    ),
    pytest.param(lambda: encode(screenshot((1, 1)), "PNG"), "too_small", id="one-pixel"),
    pytest.param(lambda: encode(screenshot((7, 300)), "PNG"), "too_small", id="seven-pixels-wide"),
]


@pytest.mark.parametrize(("make", "code"), REFUSED)
def test_refused(make: Callable[[], bytes], code: str) -> None:
    data = make()
    started = time.perf_counter()
    with pytest.raises(ImageRejected) as caught:
        sanitise_upload(data)
    # Refusals are cheap: nothing here may decode a bomb or inflate a zip.
    assert time.perf_counter() - started < 1.0
    assert caught.value.code == code
    # The message is for people: a sentence, no exception class names or paths.
    assert caught.value.message.endswith(".") and "Error" not in caught.value.message


def webp_with_canvas(width: int, height: int) -> bytes:
    """A VP8X header declaring a huge canvas around a tiny real frame."""
    frame = encode(Image.new("RGB", (16, 16), "red"), "WEBP", lossless=True)[12:]
    header = bytes(4) + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    body = b"WEBP" + b"VP8X" + struct.pack("<I", 10) + header + frame
    return b"RIFF" + struct.pack("<I", len(body)) + body


@pytest.mark.parametrize("side", [16_000, 60_000, 2**24])
def test_webp_huge_canvas_is_refused_without_allocating(side: int) -> None:
    started = time.perf_counter()
    with pytest.raises(ImageRejected) as caught:
        sanitise_upload(webp_with_canvas(side, side))
    assert caught.value.code in ("decompression_bomb", "corrupt")  # libwebp may refuse first
    assert time.perf_counter() - started < 0.2


def test_oversize_body_is_refused_before_decoding() -> None:
    with pytest.raises(ImageRejected) as caught:
        sanitise_upload(encode(screenshot((200, 200)), "PNG"), max_bytes=1000)
    assert caught.value.code == "too_large"


def test_pillows_own_bomb_error_becomes_a_rejection() -> None:
    # Our limits lifted, so Pillow's DecompressionBombError (over 2x MAX_IMAGE_PIXELS) is
    # what stops it; it must come out as ImageRejected, never as a 500.
    with pytest.raises(ImageRejected) as caught:
        sanitise_upload(raw_png(20_000, 20_000), max_pixels=10**12, max_side=10**6)
    assert caught.value.code == "decompression_bomb"


def test_pillows_bomb_warning_as_error_becomes_a_rejection() -> None:
    # Between 1x and 2x MAX_IMAGE_PIXELS Pillow only warns; under -W error that is raised.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ImageRejected) as caught:
            sanitise_upload(raw_png(10_000, 10_000), max_pixels=10**12, max_side=10**6)
    assert caught.value.code == "decompression_bomb"


def test_truncated_images_stay_refused_process_wide(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    # If anything in the process switches Pillow to padding truncated files, uploads fail
    # loudly rather than pass half-decoded.
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(RuntimeError):
        sanitise_upload(truncated(encode(screenshot(), "PNG")))


def png_with_chunks(chunk: bytes, count: int) -> bytes:
    data = encode(screenshot((16, 16)), "PNG")
    return data[:33] + chunk * count + data[33:]  # right after IHDR


def jpeg_with_segments(segment: bytes, count: int) -> bytes:
    data = encode(screenshot((16, 16)), "JPEG")
    return data[:2] + segment * count + data[2:]  # right after SOI


def gif_with_comment_blocks(count: int) -> bytes:
    data = encode(Image.new("P", (16, 16)), "GIF")
    start = 13 + (3 << ((data[10] & 7) + 1))  # after the global colour table
    comment = b"\x21\xfe" + b"\xff" + b"c" * 255
    return data[:start] + comment + (b"\xff" + b"c" * 255) * count + b"\x00" + data[start:]


FLOODS = [
    pytest.param(
        lambda n: png_with_chunks(png_chunk(b"tEXt", b"a\x00b"), n), 600, id="png-text-chunks"
    ),
    pytest.param(
        lambda n: png_with_chunks(png_chunk(b"zzZz", b""), n), 600, id="png-private-chunks"
    ),
    pytest.param(lambda n: jpeg_with_segments(b"\xff\xfe\x00\x02", n), 600, id="jpeg-comments"),
    pytest.param(lambda n: gif_with_comment_blocks(n), 600, id="gif-comment-blocks"),
]


@pytest.mark.parametrize(("make", "count"), FLOODS)
def test_structure_floods_are_refused_cheaply(make: Callable[[int], bytes], count: int) -> None:
    assert sanitise_upload(make(10)).format  # a handful is fine
    with pytest.raises(ImageRejected) as caught:
        sanitise_upload(make(count))
    assert caught.value.code == "too_complex"
    # Near the body limit, where Pillow alone would take seconds (GIF: hours, its comment
    # concatenation is quadratic), the refusal still costs next to nothing.
    per_item = len(make(count)) / count
    big = make(int(19_000_000 / per_item))  # just under the 20 MB body limit
    started = time.perf_counter()
    with pytest.raises(ImageRejected):
        sanitise_upload(big)
    assert time.perf_counter() - started < 0.2


def test_jpeg_fill_byte_flood_is_refused() -> None:
    data = encode(screenshot((16, 16)), "JPEG")
    with pytest.raises(ImageRejected) as caught:
        sanitise_upload(data[:2] + b"\xff" * 5_000_000 + data[2:])
    assert caught.value.code == "corrupt"


def test_eight_by_eight_is_the_smallest_accepted() -> None:
    result = sanitise_upload(encode(screenshot((8, 8)), "PNG"))
    assert (result.width, result.height) == (8, 8)


# --- neutralised: accepted, but only the pixels survive ---------------------------------------


def test_png_with_trailing_zip_is_reencoded_without_it() -> None:
    source = screenshot()
    payload = b"PK\x03\x04" + b"\x14\x00" * 40 + b"evil.jsp"
    result = sanitise_upload(encode(source, "PNG") + payload)
    assert b"PK\x03\x04" not in result.data and b"evil" not in result.data
    assert np.array_equal(np.asarray(decode(result.data)), np.asarray(source))


def test_png_with_trailing_html_is_reencoded_without_it() -> None:
    result = sanitise_upload(encode(screenshot(), "PNG") + b"<html><script>alert(1)</script>")
    assert b"<script" not in result.data


def test_valid_gif_js_polyglot_keeps_only_pixels() -> None:
    # 10799 px wide makes the GIF header read 'GIF87a/*': a JavaScript comment opener.
    gif = encode(Image.new("P", (10_799, 10)), "GIF")
    assert gif.startswith(b"GIF87a/*")
    result = sanitise_upload(gif + b"*/=alert(document.domain);")
    assert result.format == "PNG" and result.data.startswith(b"\x89PNG")
    assert b"alert" not in result.data and b"/*" not in result.data[:16]


def test_png_text_chunks_xmp_and_icc_are_stripped() -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "<script>alert(1)</script>")
    info.add_text("Author", "Zhang San 13800138000", zip=True)
    info.add_itxt("XML:com.adobe.xmp", "<x:xmpmeta>GPS 39.9N 116.4E</x:xmpmeta>")
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    result = sanitise_upload(encode(screenshot(), "PNG", pnginfo=info, icc_profile=icc))
    assert png_chunk_types(result.data) == [b"IHDR", b"IDAT", b"IEND"]
    assert decode(result.data).info == {}


def test_jpeg_gps_exif_comment_and_xmp_are_stripped() -> None:
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (39.0, 54.0, 27.0)  # GPSLatitudeRef, GPSLatitude
    gps[3], gps[4] = "E", (116.0, 23.0, 50.0)
    source = encode(
        screenshot((80, 60)), "JPEG", exif=exif, comment=b"<script>x</script>", xmp=b"<x:xmpmeta/>"
    )
    assert Image.open(io.BytesIO(source)).getexif().get_ifd(0x8825)  # the GPS really is there

    result = sanitise_upload(source)
    assert result.format == "JPEG"
    out = decode(result.data)
    assert len(out.getexif()) == 0
    assert "comment" not in out.info and "xmp" not in out.info and "icc_profile" not in out.info
    for marker in (b"Exif", b"PhoneMaker", b"<script", b"xmpmeta", b"\xff\xfe"):  # FFFE: COM
        assert marker not in result.data


def test_exif_orientation_is_applied_then_dropped() -> None:
    source = Image.new("RGB", (40, 20), "blue")
    source.paste((255, 0, 0), (0, 0, 20, 20))  # left half red
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated 90 degrees clockwise: the left half ends up on top
    result = sanitise_upload(encode(source, "JPEG", exif=exif, quality=95))
    out = decode(result.data).convert("RGB")
    assert (result.width, result.height) == (20, 40)
    red_top, blue_bottom = out.getpixel((10, 5)), out.getpixel((10, 35))
    assert red_top[0] > 200 and red_top[2] < 60
    assert blue_bottom[2] > 200 and blue_bottom[0] < 60
    assert 0x0112 not in out.getexif()


def test_many_frame_gif_keeps_first_frame_in_bounded_time() -> None:
    frames = [Image.new("P", (32, 32), i % 256) for i in range(1, 600)]
    for frame in frames:
        frame.putpalette([v for i in range(256) for v in (i, 255 - i, 0)])
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=10)
    started = time.perf_counter()
    result = sanitise_upload(data)
    assert time.perf_counter() - started < 0.5  # the 598 later frames are never decoded
    out = decode(result.data)
    assert result.format == "PNG" and getattr(out, "n_frames", 1) == 1
    assert out.convert("RGB").getpixel((0, 0)) == (1, 254, 0)


def test_animated_webp_keeps_first_frame() -> None:
    frames = [Image.new("RGB", (24, 24), (200, 10 * i, 0)) for i in range(5)]
    data = encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True)
    result = sanitise_upload(data)
    assert result.format == "PNG"
    assert decode(result.data).getpixel((5, 5)) == (200, 0, 0)


def test_apng_keeps_first_frame() -> None:
    frames = [Image.new("RGB", (24, 24), (0, 0, 50 * i)) for i in range(1, 5)]
    data = encode(frames[0], "PNG", save_all=True, append_images=frames[1:])
    result = sanitise_upload(data)
    assert b"acTL" not in result.data  # no animation control chunk left
    assert decode(result.data).getpixel((3, 3)) == (0, 0, 50)


# --- formats and colour modes ------------------------------------------------------------------


CONTENT_DECIDES = [
    # (what the bytes really are, what we store): a client's name or MIME type is never asked.
    pytest.param(lambda: encode(screenshot(), "PNG"), "PNG", "image/png", "png", id="png"),
    pytest.param(
        lambda: encode(screenshot(), "JPEG"), "JPEG", "image/jpeg", "jpg", id="jpeg-sent-as-png"
    ),
    pytest.param(lambda: encode(screenshot(mode="P"), "GIF"), "PNG", "image/png", "png", id="gif"),
    pytest.param(
        lambda: encode(screenshot(), "WEBP", lossless=True),
        "PNG",
        "image/png",
        "png",
        id="webp-lossless",
    ),
    pytest.param(
        lambda: encode(screenshot(), "WEBP", quality=80), "PNG", "image/png", "png", id="webp-lossy"
    ),
]


@pytest.mark.parametrize(("make", "fmt", "content_type", "extension"), CONTENT_DECIDES)
def test_output_format_follows_content(
    make: Callable[[], bytes], fmt: str, content_type: str, extension: str
) -> None:
    result = sanitise_upload(make())
    assert (result.format, result.content_type, result.extension) == (fmt, content_type, extension)
    assert decode(result.data).format == fmt
    assert (result.width, result.height) == (64, 48)


def test_cmyk_jpeg_becomes_rgb() -> None:
    cyan = Image.new("CMYK", (32, 32), (255, 0, 0, 0))
    result = sanitise_upload(encode(cyan, "JPEG", quality=95))
    out = decode(result.data)
    assert out.mode == "RGB"
    r, g, b = out.getpixel((16, 16))
    assert r < 30 and g > 220 and b > 220


def test_sixteen_bit_grey_png_is_scaled_not_clipped() -> None:
    ramp = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (16, 1))
    source = encode(Image.fromarray(ramp), "PNG")
    assert decode(source).mode.startswith("I")
    out = np.asarray(decode(sanitise_upload(source).data).convert("L"))
    assert out[0, 0] == 0 and out[0, -1] == 255
    assert 120 <= out[0, 32] <= 136  # mid-grey, not white


def test_sixteen_bit_rgb_png_becomes_8_bit_rgb() -> None:
    rows = b"".join(b"\x00" + b"\xff\xff\x80\x00\x00\x00" * 16 for _ in range(16))
    result = sanitise_upload(raw_png(16, 16, bit_depth=16, color_type=2, idat=zlib.compress(rows)))
    out = decode(result.data)
    assert out.mode == "RGB" and out.getpixel((3, 3)) == (255, 128, 0)


def test_palette_png_with_transparency_keeps_alpha() -> None:
    image = Image.new("P", (16, 16), 1)
    image.putpalette([255, 255, 255, 255, 0, 0])
    image.paste(0, (0, 0, 8, 16))
    result = sanitise_upload(encode(image, "PNG", transparency=0))
    out = decode(result.data)
    assert out.mode == "RGBA"
    assert out.getpixel((2, 2))[3] == 0 and out.getpixel((12, 2)) == (255, 0, 0, 255)


def test_grey_alpha_png_becomes_rgba() -> None:
    image = Image.new("LA", (16, 16), (90, 128))
    assert decode(sanitise_upload(encode(image, "PNG")).data).mode == "RGBA"


def test_opaque_alpha_channel_is_dropped() -> None:
    image = screenshot(mode="RGBA")
    assert decode(sanitise_upload(encode(image, "PNG")).data).mode == "RGB"


@pytest.mark.parametrize(
    ("mode", "fmt"), [("1", "PNG"), ("L", "PNG"), ("L", "JPEG"), ("P", "PNG"), ("RGBA", "WEBP")]
)
def test_other_modes_become_rgb(mode: str, fmt: str) -> None:
    assert decode(sanitise_upload(encode(screenshot(mode=mode), fmt)).data).mode == "RGB"


# --- storage names ------------------------------------------------------------------------------


def test_storage_names_are_random_and_carry_no_user_input() -> None:
    names = {new_storage_name("png") for _ in range(500)}
    assert len(names) == 500
    for name in names:
        assert re.fullmatch(r"[a-z2-7]{32}\.png", name)
    assert new_storage_name(".JPG").endswith(".jpg")


@pytest.mark.parametrize("extension", ["", "../png", "php?", "png/../../x", "p ng", "html\x00.png"])
def test_storage_names_refuse_odd_extensions(extension: str) -> None:
    with pytest.raises(ValueError):
        new_storage_name(extension)


# --- the model-ready copy --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "budget", "expected", "scale"),
    [
        ((4000, 3000), 1024, (1024, 768), 0.256),
        ((1000, 3000), 1024, (341, 1024), 1024 / 3000),
        ((300, 200), 1024, (300, 200), 1.0),  # never upscaled
        ((1920, 1080), 1920, (1920, 1080), 1.0),
    ],
)
def test_prepare_fits_budget_keeping_aspect(size, budget, expected, scale) -> None:
    prepared = prepare_for_model(
        encode(Image.new("RGB", size, "white"), "PNG"), longest_side=budget
    )
    assert (prepared.width, prepared.height) == expected
    assert decode(prepared.data).size == expected
    assert prepared.scale == pytest.approx(scale)
    assert prepared.deskew_degrees == 0.0


def test_prepare_flattens_transparency_onto_white() -> None:
    image = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    image.paste((255, 0, 0, 255), (0, 0, 8, 8))
    out = decode(prepare_for_model(encode(image, "PNG")).data)
    assert out.mode == "RGB"
    assert out.getpixel((20, 20)) == (255, 255, 255) and out.getpixel((2, 2)) == (255, 0, 0)


def prose_page(size: tuple[int, int] = (900, 700)) -> Image.Image:
    """Something like a page of text: rows of word-shaped dark blocks."""
    rng = np.random.default_rng(3)
    page = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(page)
    for top in range(60, size[1] - 60, 28):
        x = 60
        while x < size[0] - 120:
            width = int(rng.integers(20, 90))
            draw.rectangle((x, top, x + width, top + 12), fill=(20, 20, 20))
            x += width + int(rng.integers(8, 16))
    return page


@pytest.mark.parametrize("angle", [4.0, -3.0, 7.5])
def test_deskew_recovers_the_tilt(angle: float) -> None:
    tilted = prose_page().rotate(angle, expand=True, fillcolor="white")
    assert estimate_skew(tilted) == pytest.approx(angle, abs=0.3)
    prepared = prepare_for_model(encode(tilted, "JPEG"), enhance_document=True)
    assert prepared.deskew_degrees == pytest.approx(angle, abs=0.3)
    assert abs(estimate_skew(decode(prepared.data))) <= 0.3


def test_deskew_leaves_straight_pages_and_photos_alone() -> None:
    assert estimate_skew(prose_page()) == 0.0
    assert estimate_skew(screenshot((400, 300))) == 0.0  # noise: no lines to find
    assert estimate_skew(Image.new("RGB", (300, 300), "white")) == 0.0


def test_contrast_normalisation_lifts_a_dim_shadowed_page() -> None:
    page = np.asarray(prose_page().convert("L"), dtype=np.float64)
    shadow = np.linspace(0.35, 0.8, page.shape[1])[None, :]  # dark on the left
    dim = (page * 0.25 + 100) * shadow
    data = encode(Image.fromarray(dim.astype(np.uint8)).convert("RGB"), "PNG")
    plain = np.asarray(decode(prepare_for_model(data).data).convert("L"), dtype=np.float64)
    enhanced = np.asarray(
        decode(prepare_for_model(data, enhance_document=True).data).convert("L"), dtype=np.float64
    )
    assert enhanced.shape == plain.shape
    assert enhanced.std() > 2 * plain.std()
    # The dark left and the bright right end up close in level: the shadow is evened out.
    left, right = enhanced[:, :300].mean(), enhanced[:, -300:].mean()
    assert abs(left - right) < 0.5 * abs(plain[:, :300].mean() - plain[:, -300:].mean())


def test_prepare_applies_the_same_checks() -> None:
    with pytest.raises(ImageRejected):
        prepare_for_model(SVG_SCRIPT)
    with pytest.raises(ImageRejected):
        prepare_for_model(raw_png(100_000, 100_000))


def test_contrast_normalisation_keeps_dark_mode_dark() -> None:
    page = np.asarray(prose_page().convert("L"))
    dark = Image.fromarray((255 - page) // 2 + 20).convert("RGB")  # light ink, dark page
    dark.paste((20, 20, 20), (0, 0, 900, 200))  # a wide empty dark band
    out = decode(prepare_for_model(encode(dark, "PNG"), enhance_document=True).data).convert("L")
    assert np.asarray(out)[20:180, 20:880].mean() < 40

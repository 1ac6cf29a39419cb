"""Upload validation and sanitising for screenshots, and the model-ready copy.

Plain functions, no Django: the upload service calls `sanitise_upload` on the raw request
body and stores only what it returns; the inference side gets `prepare_for_model` output.

What happens to hostile input:

* Refused (`ImageRejected`): empty bodies, bodies over `max_bytes`, anything whose first
  bytes are not PNG, JPEG, WebP or GIF (SVG and gzip'd SVGZ, HTML, PDF, text, BMP, TIFF,
  HEIC...), declared dimensions over the limits (checked from the header, before any pixel
  is decoded), truncated or corrupt pixel data, images smaller than `min_side`, and
  containers flooded with chunks, markers or comment blocks (see the structure pre-scan).
* Neutralised by re-encoding: anything that is a real image *and* something else. Only
  decoded pixels reach the output, so trailing ZIP/HTML after IEND, scripts in comments or
  text chunks, a polyglot GIF/JS that still decodes, EXIF (GPS included), XMP, ICC
  profiles and PNG text chunks are all gone. Animated GIF/WebP/APNG keep their first
  frame only.

Output format: PNG for PNG, GIF and WebP sources (lossless; screenshots are text, and JPEG
artefacts around glyphs hurt reading), JPEG quality 90 with 4:4:4 chroma for JPEG sources
(they are photos or already-lossy captures; PNG would make them 5-10x bigger for no gain).
Pixels are always RGB, or RGBA when the source has real transparency.
"""

from __future__ import annotations

import base64
import io
import math
import re
import secrets
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFile, ImageFilter, ImageOps

DEFAULT_MAX_BYTES = 20 * 1024 * 1024
DEFAULT_MAX_PIXELS = 40_000_000
DEFAULT_MAX_SIDE = 16384
# Below 8 px a side there is nothing to read; such uploads are tracking pixels or mistakes.
DEFAULT_MIN_SIDE = 8

JPEG_QUALITY = 90

_ACCEPTED = "PNG, JPEG, WebP or GIF"


class ImageRejected(ValueError):
    """The upload is not an image we accept. `message` is fit to show to the user."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True)
class SanitisedImage:
    data: bytes
    format: str  # "PNG" or "JPEG": the format of `data`, not of the upload
    width: int
    height: int
    content_type: str
    extension: str  # without the dot


@dataclass(frozen=True)
class PreparedImage:
    data: bytes  # PNG, RGB
    width: int
    height: int
    # Output size / input size of the resize step (<= 1.0, never an upscale).
    scale: float
    # Degrees the image was rotated to straighten it (counter-clockwise positive), 0 if none.
    deskew_degrees: float = 0.0


# --- sniffing ---------------------------------------------------------------------------


def _sniff(data: bytes) -> str | None:
    """Pillow format name from magic bytes, for the four formats we accept."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


_OTHER_IMAGE_MAGIC = (
    b"BM",  # BMP
    b"II*\x00",  # TIFF
    b"MM\x00*",
    b"\x00\x00\x01\x00",  # ICO
    b"8BPS",  # Photoshop
    b"\xff\x0a",  # JPEG XL codestream
    b"\x00\x00\x00\x0cJXL ",
)
_SVG_MARK = re.compile(rb"<svg[\s>/]|<!doctype\s+svg", re.IGNORECASE)


def _refuse_unknown(data: bytes) -> ImageRejected:
    """Why a body with no accepted magic is refused, as precisely as cheaply possible."""
    head = data[:4096]
    if head.startswith(b"\x1f\x8b"):
        # SVGZ. Inflate at most 4 KiB: a gzip bomb must not cost us anything.
        try:
            head = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, 4096)
        except zlib.error:
            return ImageRejected(
                f"This file is not an image. Upload a {_ACCEPTED}.", "not_an_image"
            )
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        # UTF-16 text: fold to ASCII-ish bytes so the SVG test below still sees the tag.
        head = head.decode("utf-16", "ignore").encode("ascii", "ignore")
    if _SVG_MARK.search(head):
        return ImageRejected(
            f"SVG images are not accepted (they can carry scripts). Upload a {_ACCEPTED}.",
            "svg_not_allowed",
        )
    if head.startswith(_OTHER_IMAGE_MAGIC) or head[4:12] in (b"ftypheic", b"ftypavif", b"ftypmif1"):
        return ImageRejected(
            f"This image format is not supported. Upload a {_ACCEPTED}.", "unsupported_format"
        )
    return ImageRejected(f"This file is not an image. Upload a {_ACCEPTED}.", "not_an_image")


def sniff_format(data: bytes) -> str | None:
    """ "PNG", "JPEG", "GIF" or "WEBP" from the first bytes, None for anything else.

    Used by the URL fetcher too: a server's Content-Type header is never believed."""
    return _sniff(data)


def refusal_for_unknown(data: bytes) -> ImageRejected:
    """The user-facing refusal for bytes `sniff_format` does not recognise."""
    return _refuse_unknown(data)


# --- structure pre-scan -------------------------------------------------------------------
#
# Pillow parses container structure (PNG chunks, JPEG markers, GIF blocks) in Python, one
# piece at a time, and concatenates GIF comments quadratically. A 20 MB file of nothing but
# empty chunks, comment blocks or fill bytes keeps a worker busy for seconds to hours while
# decoding no pixel at all. Real images have a few dozen pieces; walk the headers with cheap
# arithmetic and refuse floods before Pillow sees them.

MAX_PNG_CHUNKS = 8192  # libpng writes 8 KiB IDATs: a 20 MB PNG has about 2,600
MAX_PNG_METADATA_CHUNKS = 512
MAX_JPEG_SEGMENTS = 512  # before the first scan; a split ICC profile is the largest user
MAX_JPEG_SCANS = 128  # progressive JPEGs have about 10
MAX_JUNK_BYTES = 1024  # fill or stray bytes between JPEG markers
MAX_GIF_EXTENSION_BLOCKS = 512  # sub-blocks of up to 255 bytes before the first frame


def _too_complex() -> ImageRejected:
    return ImageRejected(
        "This image has an unusual internal structure we cannot read safely. "
        "Save it again as PNG or JPEG and retry.",
        "too_complex",
    )


def _damaged() -> ImageRejected:
    return ImageRejected("This image is damaged and cannot be read.", "corrupt")


def _check_png_structure(data: bytes) -> None:
    pos, chunks, metadata, seen_idat = 8, 0, 0, False
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        tag = data[pos + 4 : pos + 8]
        if tag == b"IEND" or (seen_idat and tag == b"fcTL"):
            return  # Pillow stops here for frame 0 (an APNG's next frame starts at fcTL)
        seen_idat = seen_idat or tag == b"IDAT"
        chunks += 1
        metadata += tag not in (b"IDAT", b"fdAT")
        if chunks > MAX_PNG_CHUNKS or metadata > MAX_PNG_METADATA_CHUNKS:
            raise _too_complex()
        pos += 12 + length


def _check_jpeg_structure(data: bytes) -> None:
    if data.count(b"\xff\xda") > MAX_JPEG_SCANS:  # SOS; entropy-coded data never holds FFDA
        raise _too_complex()
    pos, segments, junk = 2, 0, 0
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            marker_at = data.find(b"\xff", pos)
            junk += (len(data) if marker_at < 0 else marker_at) - pos
            pos = len(data) if marker_at < 0 else marker_at
        else:
            run_end = pos + 1
            while run_end < len(data) and data[run_end] == 0xFF and run_end - pos <= MAX_JUNK_BYTES:
                run_end += 1
            junk += run_end - pos - 1  # fill bytes before the marker code
            pos = run_end - 1
            if pos + 4 > len(data):
                return
            marker = data[pos + 1]
            if marker in (0xDA, 0xD9):  # start of scan, end of image: libjpeg takes over
                return
            if 0xD0 <= marker <= 0xD7 or marker in (0x01, 0xD8):
                pos += 2  # markers without a length
            else:
                pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
                segments += 1
        if junk > MAX_JUNK_BYTES:
            raise _damaged()
        if segments > MAX_JPEG_SEGMENTS:
            raise _too_complex()


def _check_gif_structure(data: bytes) -> None:
    pos = 13
    if len(data) > 10 and data[10] & 0x80:  # global colour table
        pos += 3 << ((data[10] & 7) + 1)
    blocks = 0
    while pos < len(data):
        introducer = data[pos]
        if introducer != 0x21:
            if introducer not in (0x2C, 0x3B):  # Pillow would skip junk one byte at a time
                raise _damaged()
            return  # the first frame's pixels (or the end): decoded in C
        pos += 2  # introducer and label
        while pos < len(data) and data[pos]:
            pos += 1 + data[pos]
            blocks += 1
            if blocks > MAX_GIF_EXTENSION_BLOCKS:
                raise _too_complex()
        pos += 1  # block terminator


_STRUCTURE_CHECKS = {
    "PNG": _check_png_structure,
    "JPEG": _check_jpeg_structure,
    "GIF": _check_gif_structure,
}


# --- decoding ---------------------------------------------------------------------------


def _check_dimensions(size: tuple[int, int], *, max_pixels: int, max_side: int) -> None:
    width, height = size
    if width > max_side or height > max_side or width * height > max_pixels:
        raise ImageRejected(
            f"This image is too large ({width}x{height} pixels). "
            f"The limit is {max_side} pixels a side and {max_pixels // 1_000_000} megapixels.",
            "decompression_bomb",
        )


def _unreadable(data: bytes, fmt: str, exc: Exception) -> ImageRejected:
    # Pillow says "truncated" for PNG, JPEG and GIF; libwebp only says "failed", but a
    # RIFF container states its own length, so a short WebP is recognisable.
    riff_short = fmt == "WEBP" and int.from_bytes(data[4:8], "little") + 8 > len(data)
    if riff_short or "truncated" in str(exc):
        return ImageRejected("This image is incomplete (the upload was cut short).", "truncated")
    return _damaged()


def _decode(
    data: bytes, *, max_bytes: int, max_pixels: int, max_side: int, min_side: int
) -> tuple[Image.Image, str]:
    """Validated, fully decoded first frame (EXIF orientation applied) and source format."""
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        # Pillow's process-wide "pad truncated files with grey" switch is on (its default is
        # off). Half-decoded uploads would then pass as valid, so fail loudly instead.
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES must be False")
    if not data:
        raise ImageRejected("The file is empty.", "empty")
    if len(data) > max_bytes:
        raise ImageRejected(
            f"This file is too large. The limit is {max_bytes // (1024 * 1024)} MB.", "too_large"
        )
    fmt = _sniff(data)
    if fmt is None:
        raise _refuse_unknown(data)
    if check := _STRUCTURE_CHECKS.get(fmt):  # WebP's container is parsed by libwebp, in C
        check(data)
    try:
        # formats= pins the plugin to what the magic bytes said, so Pillow cannot be talked
        # into a different parser. open() reads headers only: no pixels are decoded yet.
        image = Image.open(io.BytesIO(data), formats=[fmt])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # Pillow's own guard (also raised as an exception when warnings are errors).
        raise ImageRejected(
            "This image's dimensions are too large.", "decompression_bomb"
        ) from None
    except Exception as exc:  # noqa: BLE001 - any parser failure on untrusted bytes is a 400
        raise _unreadable(data, fmt, exc) from None
    _check_dimensions(image.size, max_pixels=max_pixels, max_side=max_side)
    try:
        # Only frame 0 is ever decoded; n_frames/is_animated are never touched because for
        # GIF they walk every frame.
        image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageRejected(
            "This image's dimensions are too large.", "decompression_bomb"
        ) from None
    except Exception as exc:  # noqa: BLE001 - as above
        raise _unreadable(data, fmt, exc) from None
    # A GIF frame may be larger than the header said; Pillow grows the canvas on load.
    _check_dimensions(image.size, max_pixels=max_pixels, max_side=max_side)
    try:
        image = ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001, S110 - bad EXIF only costs the orientation hint
        pass
    if image.width < min_side or image.height < min_side:
        raise ImageRejected(
            f"This image is too small to read ({image.width}x{image.height} pixels; "
            f"at least {min_side}x{min_side} needed).",
            "too_small",
        )
    return image, fmt


def _to_rgb_or_rgba(image: Image.Image) -> Image.Image:
    """RGB, or RGBA when there is transparency that actually hides something."""
    mode = image.mode
    if mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        # 16-bit greyscale (and the rare 32-bit modes): scale to 8 bits instead of letting
        # a plain convert clip everything above 255 to white.
        values = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if mode != "F" else max(float(values.max(initial=0.0)), 1.0)
        grey = np.clip(values * (255.0 / peak), 0, 255).round().astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    if not has_alpha:
        return image.convert("RGB")  # covers 1, L, P, CMYK, YCbCr, LAB, HSV
    rgba = image.convert("RGBA")
    if rgba.getchannel("A").getextrema() == (255, 255):
        return rgba.convert("RGB")  # an alpha channel that is opaque everywhere is just bytes
    return rgba


def sanitise_upload(
    data: bytes,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_side: int = DEFAULT_MAX_SIDE,
    min_side: int = DEFAULT_MIN_SIDE,
) -> SanitisedImage:
    """Validate an upload by its content and re-encode it with no metadata.

    Raises `ImageRejected` for anything that is not a readable PNG/JPEG/WebP/GIF within
    the limits. The result holds only decoded pixels: nothing from the upload's bytes
    (metadata, trailing data, comments) survives.
    """
    image, source_format = _decode(
        data, max_bytes=max_bytes, max_pixels=max_pixels, max_side=max_side, min_side=min_side
    )
    clean = _to_rgb_or_rgba(image)
    if clean is image:
        clean = image.copy()
    # convert()/copy() carry `info` over, and the PNG writer re-emits info["icc_profile"]
    # and info["transparency"]; start from an empty dict so nothing from the upload leaks.
    clean.info = {}
    out = io.BytesIO()
    if source_format == "JPEG" and clean.mode == "RGB":
        clean.save(out, "JPEG", quality=JPEG_QUALITY, subsampling=0)
        fmt, content_type, extension = "JPEG", "image/jpeg", "jpg"
    else:
        clean.save(out, "PNG")
        fmt, content_type, extension = "PNG", "image/png", "png"
    return SanitisedImage(
        data=out.getvalue(),
        format=fmt,
        width=clean.width,
        height=clean.height,
        content_type=content_type,
        extension=extension,
    )


# --- the model-ready copy ---------------------------------------------------------------


def _flatten(image: Image.Image) -> Image.Image:
    """RGB on white: transparent regions of screenshots are background, not black."""
    image = _to_rgb_or_rgba(image)
    if image.mode == "RGBA":
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image.getchannel("A"))
        return background
    return image


def _otsu_threshold(grey: np.ndarray) -> int:
    hist = np.bincount(grey.ravel(), minlength=256).astype(np.float64)
    levels = np.arange(256, dtype=np.float64)
    weight_low = np.cumsum(hist)
    weight_high = weight_low[-1] - weight_low
    sum_low = np.cumsum(hist * levels)
    mean_low = sum_low / np.maximum(weight_low, 1)
    mean_high = (sum_low[-1] - sum_low) / np.maximum(weight_high, 1)
    between = weight_low * weight_high * (mean_low - mean_high) ** 2
    return int(np.argmax(between))


def _profile_score(ys: np.ndarray, xs: np.ndarray, degrees: float) -> float:
    """Sharpness of the row profile of ink pixels after rotating them by `degrees`."""
    theta = math.radians(degrees)
    rows = np.round(ys * math.cos(theta) + xs * math.sin(theta)).astype(np.int64)
    counts = np.bincount(rows - rows.min())
    # Text lines that are level pile their ink into few rows: the sum of squares peaks.
    return float(np.dot(counts, counts))


def estimate_skew(image: Image.Image, *, max_degrees: float = 10.0) -> float:
    """Angle in degrees by which text lines are rotated counter-clockwise (0 if unsure).

    Projection-profile search on a binarised copy about 800 px wide: coarse steps of 0.5
    degree, then 0.1 around the best.
    """
    grey = image.convert("L")
    grey.thumbnail((800, 800), Image.Resampling.BILINEAR)
    pixels = np.asarray(grey)
    ink = pixels < _otsu_threshold(pixels)
    if ink.mean() > 0.5:
        ink = ~ink  # light text on a dark background
    ys, xs = np.nonzero(ink)
    fraction = ys.size / max(ink.size, 1)
    if ys.size < 200 or not 0.002 <= fraction <= 0.4:
        return 0.0  # blank page or a photo: no text lines to line up
    step = max(1, ys.size // 50_000)  # a sample of the ink is as good, and bounds the work
    ys = ys[::step].astype(np.float64)
    xs = xs[::step].astype(np.float64)
    # Image coordinates have y pointing down, so a line tilted counter-clockwise by `a`
    # runs y = c - x*tan(a); y*cos(a) + x*sin(a) is constant along it.
    coarse = np.arange(-max_degrees, max_degrees + 1e-9, 0.5)
    scores = [_profile_score(ys, xs, a) for a in coarse]
    best = float(coarse[int(np.argmax(scores))])
    fine = np.arange(best - 0.5, best + 0.5 + 1e-9, 0.1)
    fine_scores = [_profile_score(ys, xs, a) for a in fine]
    best = float(fine[int(np.argmax(fine_scores))])
    if max(fine_scores) < 1.02 * _profile_score(ys, xs, 0.0):
        return 0.0  # no clear winner: leave the image alone rather than rotate noise
    return round(best, 1)


def _normalise_contrast(image: Image.Image) -> Image.Image:
    """Even out a photographed page's lighting and stretch its contrast, on luminance only.

    Dividing by the estimated paper brightness removes shadows and vignetting (a global
    stretch cannot: shadowed paper can be darker than lit ink); then a 1% stretch makes
    the ink dark again. Colour (Cb, Cr) is left as it was.
    """
    y, cb, cr = image.convert("YCbCr").split()
    luma = np.asarray(y, dtype=np.float32)
    # The lighting is read from a 1/8 copy, in neighbourhoods of about 56 px.
    small = y.resize((max(1, y.width // 8), max(1, y.height // 8)), Image.Resampling.BOX)
    high = small.filter(ImageFilter.MaxFilter(7))
    local_max = np.asarray(high, np.float32)
    local_median = np.asarray(small.filter(ImageFilter.MedianFilter(7)), np.float32)
    local_min = np.asarray(small.filter(ImageFilter.MinFilter(7)), np.float32)
    # Ink on paper: locally most pixels are paper, so the median sits near the maximum.
    # Light-on-dark is only stretched: dividing would turn its empty dark areas white.
    if (local_max - local_median).mean() <= (local_median - local_min).mean():
        paper = high.filter(ImageFilter.GaussianBlur(2)).resize(y.size, Image.Resampling.BILINEAR)
        luma = np.clip(luma / np.maximum(np.asarray(paper, np.float32), 1.0) * 255.0, 0, 255)
    y = ImageOps.autocontrast(Image.fromarray(luma.round().astype(np.uint8)), cutoff=1)
    return Image.merge("YCbCr", (y, cb, cr)).convert("RGB")


def prepare_for_model(
    data: bytes,
    *,
    longest_side: int = 1024,
    enhance_document: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> PreparedImage:
    """The copy the model sees: RGB PNG whose longest side fits `longest_side`.

    Never upscales. With `enhance_document`, a photographed page is straightened
    (projection-profile deskew) and its lighting and contrast evened out (luminance only).
    Accepts the same inputs, and applies the same checks, as `sanitise_upload`.
    """
    image, _ = _decode(
        data,
        max_bytes=DEFAULT_MAX_BYTES,
        max_pixels=max_pixels,
        max_side=DEFAULT_MAX_SIDE,
        min_side=1,
    )
    image = _flatten(image)
    skew = 0.0
    if enhance_document:
        skew = estimate_skew(image)
        if skew:
            # Rotating clockwise by the measured tilt straightens the lines; expand keeps
            # the corners, and the new corners are filled with paper white.
            image = image.rotate(
                -skew, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=(255, 255, 255)
            )
    scale = min(1.0, longest_side / max(image.size))
    if scale < 1.0:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        # reducing_gap first shrinks by an integer factor (fast, box filter), then LANCZOS.
        image = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    if enhance_document:
        image = _normalise_contrast(image)
    out = io.BytesIO()
    image.save(out, "PNG")
    return PreparedImage(
        data=out.getvalue(),
        width=image.width,
        height=image.height,
        scale=scale,
        deskew_degrees=skew,
    )


# --- storage names ----------------------------------------------------------------------

_EXTENSION = re.compile(r"[a-z0-9]{1,8}")


def new_storage_name(extension: str) -> str:
    """A random file name, e.g. 'k3x...q.png', with nothing from the user in it.

    160 random bits in lowercase base32: unguessable, no leading '-' or '.', and no two
    names that differ only in case (they would collide on case-insensitive disks).
    `extension` must come from `SanitisedImage.extension`, never from the upload's name.
    """
    ext = extension.lower().removeprefix(".")
    if not _EXTENSION.fullmatch(ext):
        raise ValueError(f"unexpected extension {extension!r}")
    token = base64.b32encode(secrets.token_bytes(20)).decode("ascii").lower()
    return f"{token}.{ext}"

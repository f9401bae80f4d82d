"""Uploaded images (profile photos, chat attachments): decoded with bounded dimensions, then stored as
a new file made from their pixels only.

An upload's bytes are never stored as sent. Its header is read first and its size checked against
the settings (a decompression bomb declares huge dimensions in a few kilobytes), then it is decoded
and re-encoded in its own format: trailing data (a PNG with HTML after it, a polyglot), EXIF (GPS
positions), comments and text chunks are gone, and what is served is an image a decoder produced.
"""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass

from PIL import Image, ImageFilter, ImageOps, ImageSequence, UnidentifiedImageError

from control_api.errors import TooLarge, UnsupportedMedia
from control_api.http import Call
from control_api.storage import sniff_image

IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp", "image/gif")
"""Content types accepted for uploads (and the only ones ever stored)."""

_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif"}
_OPENERS = list(_FORMATS)
_STILL = {"MPO": "JPEG"}
"""Formats Pillow reports for files of ours that are stored as their first picture only: phones write
MPO (a JPEG followed by more JPEGs: depth maps, previews); its first picture is the photo."""


@dataclass(frozen=True)
class ImageLimits:
    """What a decoded upload may be."""

    max_side: int
    """Largest width or height, in pixels."""
    max_pixels: int
    """Largest number of pixels over all frames (width x height x frames)."""

    def __post_init__(self) -> None:
        if self.max_side <= 0 or self.max_pixels <= 0:
            raise ValueError("image limits must be positive")


def reencode(data: bytes, limits: ImageLimits) -> tuple[bytes, str]:
    """``data`` decoded and encoded again (same format, pixels only), and its content type.

    Raises UnsupportedMedia when the bytes are not a whole JPEG, PNG, WebP or GIF, and TooLarge when
    its dimensions exceed ``limits`` (checked from the header, before any pixel is decoded). CPU
    bound: call it off the event loop.
    """
    kind = sniff_image(data)
    if kind is None:
        raise UnsupportedMedia("send a JPEG, PNG, WebP or GIF image")
    try:
        with Image.open(io.BytesIO(data), formats=_OPENERS) as img:
            fmt = _STILL.get(img.format or "", img.format or "")
            if _FORMATS.get(fmt) != kind:
                raise UnsupportedMedia("the image's content does not match its signature")
            width, height = img.size
            frames = 1 if fmt != img.format else getattr(img, "n_frames", 1)
            if max(width, height) > limits.max_side or width * height * frames > limits.max_pixels:
                raise TooLarge(f"an image is at most {limits.max_side} pixels wide or high and "
                               f"{limits.max_pixels} pixels in all (this one: {width}x{height}x{frames})")
            return _encode(img, fmt, frames), kind
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # Pillow's own guard (far above ours) fires in open(), before our check: the same answer.
        # (Its warning is an exception only where warnings are errors, as in the tests.)
        raise TooLarge("the image is too large (decompression bomb)") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError):
        # Truncated or corrupt data: Pillow's decoders raise any of these.
        raise UnsupportedMedia("the image cannot be decoded (corrupt or truncated)") from None


def _encode(img: Image.Image, fmt: str, frames: int) -> bytes:
    out = io.BytesIO()
    if frames > 1:
        # Animated GIF/WebP: every frame again, with its timing; nothing else carried over.
        pictures = [frame.copy() for frame in ImageSequence.Iterator(img)]
        durations = [p.info.get("duration", 100) for p in pictures]
        pictures[0].save(out, format=fmt, save_all=True, append_images=pictures[1:], duration=durations,
                         loop=img.info.get("loop", 0))
        return out.getvalue()
    img.load()
    picture = ImageOps.exif_transpose(img)  # the orientation EXIF gave, applied before EXIF is dropped
    if fmt == "JPEG":
        if picture.mode not in ("RGB", "L"):
            picture = picture.convert("RGB")
        picture.save(out, format="JPEG", quality=90)
    elif fmt == "WEBP":
        picture.save(out, format="WEBP", quality=90)
    else:
        picture.save(out, format=fmt)
    return out.getvalue()


PREVIEW_SIDE = 32
"""Largest side of a pay-per-view preview, in pixels: too few to show anything, enough for a shape."""
PREVIEW_TYPE = "image/jpeg"


def blurred_preview(data: bytes) -> bytes:
    """The preview a receiver sees before paying for a private image: the first frame downscaled to
    at most :data:`PREVIEW_SIDE` pixels and blurred hard, as a JPEG (the browser scales it up).

    ``data`` is an image this module re-encoded already (trusted dimensions). CPU bound: call it off
    the event loop."""
    with Image.open(io.BytesIO(data), formats=_OPENERS) as img:
        img.seek(0)
        picture = img.convert("RGB")
    picture.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE), Image.Resampling.BOX)
    # A radius of a fifth of the side: shapes and colours survive, nothing a person could read.
    picture = picture.filter(ImageFilter.GaussianBlur(max(2, max(picture.size) // 5)))
    out = io.BytesIO()
    picture.save(out, format="JPEG", quality=50)
    return out.getvalue()


async def read_image_upload(call: Call, noun: str) -> tuple[bytes, str]:
    """The upload (``call.raw``, read within the upload limit by the HTTP edge) as a re-encoded image
    and its content type; the decoding runs in a thread."""
    settings = call.services.settings
    if not call.raw:
        raise UnsupportedMedia(f"send {noun} as the request body (a JPEG, PNG, WebP or GIF image)")
    limits = ImageLimits(settings.image_max_side, settings.image_max_pixels)
    return await asyncio.to_thread(reencode, call.raw, limits)

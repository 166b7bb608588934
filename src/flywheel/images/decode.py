"""One image file or upload to the spec's pixels, or one line saying why not.

Every door (validation, training, evaluation, serving, `flywheel predict`) decodes through
here, so a file the service would refuse can never have been trained on, and the model sees
the same pixels offline and live (no train/serve skew). Only PNG and JPEG are read (a text file
renamed `.png` is refused by its bytes, not its name), the byte count and the pixel count are
bounded before decoding (a decompression bomb is refused, not allocated), and a truncated file
fails (`verify` checks a PNG's checksums and end chunk, `load` a JPEG's data) where Pillow
would otherwise pad it with grey or not notice.

Under `resize: fit` every readable file becomes the spec's pixels by one declared rule: a
transparent pixel (RGBA, LA, a palette's or grey PNG's transparency) is laid over
`image.background`, the result converted to `mode` and resized (bilinear, antialiased; the
aspect ratio is not kept) to `width` x `height`. A JPEG larger than that is decoded at a
reduced scale first (libjpeg's DCT scaling, `draft`): a phone photo costs a fraction of its
full decode, and every door decodes the same bytes to the same pixels.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from flywheel.data.image_spec import ImageSpec
from flywheel.errors import DataError

FORMATS = ("PNG", "JPEG")
# Pixels an image may have before it is decoded, as a multiple of the spec's own size (and at
# least a 4096x4096 image, a 12-megapixel phone photo): enough for a photo that `resize: fit`
# shrinks, not for a bomb.
MAX_PIXEL_FACTOR = 64
MIN_PIXEL_LIMIT = 4096 * 4096
BACKGROUNDS = {"white": 255, "black": 0}  # image.background, per channel


@dataclass(frozen=True)
class Decoded:
    """The pixels the model sees (height, width, channels; uint8) and what the file was."""

    pixels: np.ndarray
    width: int  # as stored, before any resize
    height: int
    channels: int
    nbytes: int


def pixel_limit(spec: ImageSpec) -> int:
    return max(MIN_PIXEL_LIMIT, MAX_PIXEL_FACTOR * spec.width * spec.height)


def decode_image(data: bytes, spec: ImageSpec, name: str) -> Decoded:
    """`name` is what the error names: the file's path, or the upload's field."""
    if len(data) > spec.max_bytes:
        raise DataError(f"{name}: {len(data)} bytes, more than image.max_bytes {spec.max_bytes}")
    try:
        with Image.open(io.BytesIO(data), formats=list(FORMATS)) as image:
            image.verify()  # a PNG's chunk checksums and its end: pixels alone may be complete
        with Image.open(io.BytesIO(data), formats=list(FORMATS)) as image:
            width, height = image.size
            if width * height > pixel_limit(spec):
                raise DataError(f"{name}: {width}x{height} pixels, more than this spec accepts "
                                f"({pixel_limit(spec)} pixels)")
            stored = (width, height, len(image.getbands()), len(data))
            if spec.resize == "fit" and image.format == "JPEG":
                image.draft(spec.mode, (spec.width, spec.height))  # no-op unless it shrinks
            image.load()
            return _fit(image, spec, name, stored)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError,
            Image.DecompressionBombError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(f"{name}: not a readable PNG or JPEG image ({reason})") from None


def _fit(image: Image.Image, spec: ImageSpec, name: str, stored: tuple[int, int, int, int]
         ) -> Decoded:
    """`stored`: the file's width, height, channels and bytes (what its statistics report),
    as it was before a JPEG's reduced-scale decoding."""
    width, height, channels, nbytes = stored
    if spec.resize == "none":
        if (width, height) != (spec.width, spec.height):
            raise DataError(f"{name}: {width}x{height} pixels, expected {spec.width}x"
                            f"{spec.height} (image.resize: none)")
        if image.mode != spec.mode:
            raise DataError(f"{name}: mode {image.mode}, expected {spec.mode} "
                            "(image.resize: none)")
    converted = _opaque(image, spec).convert(spec.mode)
    if converted.size != (spec.width, spec.height):
        converted = converted.resize((spec.width, spec.height), Image.Resampling.BILINEAR)
    pixels = np.asarray(converted, dtype=np.uint8).reshape(spec.height, spec.width,
                                                           spec.channels)
    return Decoded(pixels=pixels, width=width, height=height, channels=channels, nbytes=nbytes)


def _opaque(image: Image.Image, spec: ImageSpec) -> Image.Image:
    """The image laid over the spec's background where it has transparency, else itself
    (`convert` alone would keep whatever colour a transparent pixel happens to store)."""
    if not image.has_transparency_data:
        return image
    rgba = image.convert("RGBA")
    shade = BACKGROUNDS[spec.background]
    return Image.alpha_composite(Image.new("RGBA", rgba.size, (shade, shade, shade, 255)), rgba)


def to_batch(decoded: list[Decoded]) -> np.ndarray:
    """Networks' input: float32 (n, channels, height, width) in [0, 1]."""
    if not decoded:
        raise DataError("no images to score")
    stacked = np.stack([d.pixels for d in decoded]).astype(np.float32) / 255.0
    return np.ascontiguousarray(stacked.transpose(0, 3, 1, 2))

"""A non-MNIST image set for the end-to-end tests: coloured shapes a model can learn, but not
from colour, size or position alone.

Five classes (two with a space in their name), each image an RGB canvas of 40 to 90 pixels a
side (not always square) with a random background and foreground colour, the shape at a random
place and scale, Gaussian noise, saved mostly as JPEG (random quality) with a few grey JPEGs,
palette PNGs and RGBA PNGs (a transparent background) mixed in: what a folder of real photos
throws at the spec inference, the decoder and the network. numpy and Pillow only, seeded.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CLASSES = ("circle", "square", "triangle", "vertical stripes", "plus sign")
MIN_SIDE, MAX_SIDE = 40, 90


def _colours(rng: np.random.Generator) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """A background and a foreground far enough apart in brightness to see the shape."""
    while True:
        back, fore = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        if abs(int(back.mean()) - int(fore.mean())) > 60:
            return tuple(int(v) for v in back), tuple(int(v) for v in fore)


def _draw(draw: ImageDraw.ImageDraw, name: str, box: tuple[int, int, int, int],
          fore: tuple[int, ...]) -> None:
    left, top, right, bottom = box
    side = right - left
    if name == "circle":
        draw.ellipse(box, fill=fore)
    elif name == "square":
        draw.rectangle(box, fill=fore)
    elif name == "triangle":
        draw.polygon([(left, bottom), (right, bottom), ((left + right) // 2, top)], fill=fore)
    elif name == "vertical stripes":
        bar = max(2, side // 7)
        for x in range(left, right, 2 * bar):
            draw.rectangle((x, top, x + bar - 1, bottom), fill=fore)
    else:  # plus sign
        arm = max(3, side // 4)
        middle_x, middle_y = (left + right) // 2, (top + bottom) // 2
        draw.rectangle((middle_x - arm // 2, top, middle_x + arm // 2, bottom), fill=fore)
        draw.rectangle((left, middle_y - arm // 2, right, middle_y + arm // 2), fill=fore)


def shape_image(name: str, rng: np.random.Generator) -> Image.Image:
    """One RGB image of the class `name`: random canvas, colours, place, scale and noise."""
    width = int(rng.integers(MIN_SIDE, MAX_SIDE + 1))
    height = width if rng.random() < 0.7 else int(rng.integers(MIN_SIDE, MAX_SIDE + 1))
    back, fore = _colours(rng)
    image = Image.new("RGB", (width, height), back)
    short = min(width, height)
    side = int(short * rng.uniform(0.45, 0.8))
    left = int(rng.integers(0, width - side + 1))
    top = int(rng.integers(0, height - side + 1))
    _draw(ImageDraw.Draw(image), name, (left, top, left + side - 1, top + side - 1), fore)
    noisy = np.asarray(image, dtype=np.float64) + rng.normal(0, 18, (height, width, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), mode="RGB")


def encoded(image: Image.Image, rng: np.random.Generator) -> tuple[bytes, str]:
    """The image's file bytes and extension: mostly RGB JPEG, some grey JPEG, palette PNG or
    RGBA PNG whose background (the corner's colour) is transparent, half the time transparent
    black as many editors store it."""
    buffer = io.BytesIO()
    draw = rng.random()
    if draw < 0.80:
        image.save(buffer, format="JPEG", quality=int(rng.integers(70, 96)))
        return buffer.getvalue(), ".jpg"
    if draw < 0.88:
        image.convert("L").save(buffer, format="JPEG", quality=90)
        return buffer.getvalue(), ".jpeg"
    if draw < 0.94:
        image.convert("P", palette=Image.Palette.ADAPTIVE, colors=64).save(buffer, format="PNG")
        return buffer.getvalue(), ".png"
    rgba = image.convert("RGBA")
    pixels = np.asarray(rgba).copy()
    corner = pixels[0, 0, :3].astype(int)
    background = np.abs(pixels[..., :3].astype(int) - corner).sum(axis=2) < 60
    pixels[background, 3] = 0
    if rng.random() < 0.5:  # many editors store a transparent pixel as transparent black
        pixels[background] = 0
    Image.fromarray(pixels, mode="RGBA").save(buffer, format="PNG")
    return buffer.getvalue(), ".png"


def write_shapes(out: Path, per_class: int, seed: int) -> int:
    """`per_class` images of each class under `out/<class>/`; returns how many. Another seed
    draws other images (held-out ones for serving)."""
    rng = np.random.default_rng(seed)
    for name in CLASSES:
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            data, extension = encoded(shape_image(name, rng), rng)
            (folder / f"{seed}-{index:04d}{extension}").write_bytes(data)
    return per_class * len(CLASSES)

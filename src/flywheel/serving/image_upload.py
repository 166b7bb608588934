"""`/predict_image`'s body to the uploaded images' bytes, or one line naming what is wrong.

Two ways to send images, both naming the field `image`: a multipart form (`curl -F
image=@digit.png`, the field repeated for several) or JSON with base64 text (`{"image":
"<base64>"}`, or a list of such objects). The body has been read within its byte limit
already (serving/image_request.py); here the form parser is bounded too (files and fields,
python-multipart through Starlette's parser: its `max_part_size` bounds text fields only, so
a text field is held to the image size as well), and each image is held to `image.max_bytes`
before it is decoded. Nothing here decodes pixels: `images/decode.py` does, at every door.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncGenerator
from typing import Any

import orjson
from starlette.datastructures import Headers, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

FIELD = "image"
FORM_TYPE = b"multipart/form-data"
MAX_OTHER_FIELDS = 8  # a form may carry a few other fields; they are ignored


class UploadRefused(Exception):
    """An upload answered with a 4xx: `status`, the counted `reason`, one-line message."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


def is_form(content_type: bytes) -> bool:
    return content_type.split(b";", 1)[0].strip().lower() == FORM_TYPE


async def uploaded_images(headers: Headers, body: bytes, max_images: int,
                          max_bytes: int) -> list[bytes]:
    """The images in the body, in order; `UploadRefused` for a missing field, a field that is
    not an image's bytes, too many images, or one over `max_bytes`."""
    if is_form(headers.get("content-type", "").encode("latin-1")):
        images = await _form_images(headers, body, max_images, max_bytes)
    else:
        images = _json_images(body)
    if not images:
        raise UploadRefused(422, "missing_field", f"field '{FIELD}' holds no image")
    if len(images) > max_images:
        raise UploadRefused(413, "too_large", f"field '{FIELD}': {len(images)} images, more "
                            f"than {max_images} a request (serve.max_batch_size)")
    for index, data in enumerate(images):
        if len(data) > max_bytes:
            raise UploadRefused(413, "too_large", f"{field_name(index, len(images))}: "
                                f"{len(data)} bytes, more than image.max_bytes {max_bytes}")
    return images


def field_name(index: int, count: int) -> str:
    """How an error names one image: the field, with its position when there are several."""
    return f"field '{FIELD}'" if count == 1 else f"field '{FIELD}' [{index}]"


async def _form_images(headers: Headers, body: bytes, max_images: int,
                       max_bytes: int) -> list[bytes]:
    async def stream() -> AsyncGenerator[bytes, None]:
        yield body

    try:
        form = await MultiPartParser(headers, stream(), max_files=max_images,
                                     max_fields=MAX_OTHER_FIELDS,
                                     max_part_size=max_bytes).parse()
    except MultiPartException as exc:
        raise UploadRefused(400, "bad_form", f"multipart form: {exc.message}") from None
    try:
        values = form.getlist(FIELD)
        if not values:
            raise UploadRefused(422, "missing_field", _missing(list(form.keys())))
        files = [v for v in values if isinstance(v, UploadFile)]
        if len(files) != len(values):
            raise UploadRefused(422, "bad_field", f"field '{FIELD}' must be a file upload "
                                f"(curl -F {FIELD}=@digit.png), not text")
        return [await f.read() for f in files]
    finally:
        await form.close()


def _json_images(body: bytes) -> list[bytes]:
    try:
        payload = orjson.loads(body or b"null")
    except orjson.JSONDecodeError:
        raise UploadRefused(400, "not_json", "request body is neither a multipart form nor "
                            f'JSON ({{"{FIELD}": "<base64>"}})') from None
    items = payload if isinstance(payload, list) else [payload]
    images = []
    for index, item in enumerate(items):
        if not isinstance(item, dict) or FIELD not in item:
            keys = list(item) if isinstance(item, dict) else []
            raise UploadRefused(422, "missing_field", _missing(keys, index, len(items)))
        images.append(_base64(item[FIELD], index, len(items)))
    return images


def _base64(value: Any, index: int, count: int) -> bytes:
    if not isinstance(value, str):
        raise UploadRefused(422, "bad_field", f"{field_name(index, count)} must be base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise UploadRefused(422, "bad_field",
                            f"{field_name(index, count)} is not valid base64") from None


def _missing(keys: list[str], index: int = 0, count: int = 1) -> str:
    where = "" if count == 1 else f"item {index}: "
    got = ", ".join(repr(k)[:40] for k in keys[:5]) or "no fields"
    return f"{where}missing field '{FIELD}' (got {got})"

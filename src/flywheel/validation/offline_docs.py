"""Great Expectations Data Docs that work offline: styled, with their result list, no CDN.

GX's pages load Bootstrap, jQuery, bootstrap-table and Font Awesome from CDNs, and the index
page builds its list of validation results in JavaScript with those libraries: offline it is
unstyled and lists nothing. The exact versions GX's templates name are vendored under
`docs_assets/` (each with its licence); they are copied next to the docs and every page
points at the local copies. Any other external script, stylesheet or image is dropped, and
links out of the docs go nowhere. The validation page also names the data asset, which GX
leaves as "None" for an in-memory frame.
"""

from __future__ import annotations

import html
import os
import re
import shutil
from functools import partial
from pathlib import Path

ASSETS = Path(__file__).with_name("docs_assets")
LOCAL_DIR = "static/vendor"  # under the docs folder, beside GX's own static/

# The URLs in GX 1.24's templates (render/view/templates/*.j2) -> the vendored file.
VENDORED = {
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": (
        "bootstrap-4.3.1/bootstrap.min.css"
    ),
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": (
        "bootstrap-4.3.1/bootstrap.min.js"
    ),
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery-3.7.1/jquery.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js": (
        "popper.js-1.12.9/popper.min.js"
    ),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css": (
        "bootstrap-table-1.19.1/bootstrap-table.min.css"
    ),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js": (
        "bootstrap-table-1.19.1/bootstrap-table.min.js"
    ),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/"
    "bootstrap-table-filter-control.min.js": (
        "bootstrap-table-1.19.1/bootstrap-table-filter-control.min.js"
    ),
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/"
    "bootstrap-table-filter-control.css": (
        "bootstrap-table-1.19.0/bootstrap-table-filter-control.min.css"
    ),
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/"
    "bootstrap-table-filter-control.min.css": (
        "bootstrap-table-1.19.0/bootstrap-table-filter-control.min.css"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/"
    "bootstrap-datepicker.min.css": ("bootstrap-datepicker-1.9.0/bootstrap-datepicker.min.css"),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/"
    "bootstrap-datepicker.min.js": ("bootstrap-datepicker-1.9.0/bootstrap-datepicker.min.js"),
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/"
    "bootstrap-prefers-dark.css": ("bootstrap-dark-1.1.0/bootstrap-prefers-dark.min.css"),
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css": (
        "fontawesome-free-6.6.0/css/all.min.css"
    ),
}
URL_ATTRIBUTE = re.compile(r"(?P<attr>src|href)=\"(?P<url>https?://[^\"]*)\"", re.IGNORECASE)
EXTERNAL_TAG = re.compile(
    r"<script[^>]*\bsrc=\"https?://[^\"]*\"[^>]*>\s*</script>"
    r"|<link[^>]*\bhref=\"https?://[^\"]*\"[^>]*>"
    r"|<img[^>]*\bsrc=\"https?://[^\"]*\"[^>]*>",
    re.IGNORECASE,
)
EXTERNAL_LINK = re.compile(r"href=\"https?://[^\"]*\"", re.IGNORECASE)


def make_offline(docs_dir: Path, asset_name: str) -> None:
    """Copy the vendored libraries into `docs_dir` and rewrite every page there in place."""
    shutil.copytree(ASSETS, docs_dir / LOCAL_DIR, dirs_exist_ok=True)
    for page in docs_dir.rglob("*.html"):
        prefix = Path(os.path.relpath(docs_dir / LOCAL_DIR, page.parent)).as_posix()
        text = page.read_text(encoding="utf8")
        text = URL_ATTRIBUTE.sub(partial(_local, prefix=prefix), text)
        text = EXTERNAL_TAG.sub("", text)
        text = EXTERNAL_LINK.sub('href="#"', text)
        text = text.replace("Data asset: None", f"Data asset: {html.escape(asset_name)}")
        page.write_text(text, encoding="utf8")


def _local(match: re.Match[str], prefix: str) -> str:
    """A vendored library's URL becomes its local copy; any other is left to drop."""
    local = VENDORED.get(match["url"])
    return match[0] if local is None else f'{match["attr"]}="{prefix}/{local}"'

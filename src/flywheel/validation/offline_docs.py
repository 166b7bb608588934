"""Great Expectations Data Docs that work offline: no CDN, the result list in plain HTML.

GX's pages load Bootstrap, jQuery and bootstrap-table from CDNs, and the index page builds
its list of validation results in JavaScript from those libraries: offline it shows no
results at all. Here every page drops the external tags (GX's own stylesheet in `static/`
stays), each JavaScript-filled table gets its rows written in as HTML, and the validation
page names the data asset, which GX leaves as "None" for an in-memory frame.
"""

from __future__ import annotations

import ast
import html
import re
from pathlib import Path

EXTERNAL_TAG = re.compile(
    r"<script[^>]*\bsrc=\"https?://[^\"]*\"[^>]*>\s*</script>"
    r"|<link[^>]*\bhref=\"https?://[^\"]*\"[^>]*>"
    r"|<img[^>]*\bsrc=\"https?://[^\"]*\"[^>]*>",
    re.IGNORECASE,
)
EXTERNAL_LINK = re.compile(r"href=\"https?://[^\"]*\"", re.IGNORECASE)
JS_TABLE = re.compile(
    r"(<table\s+id=\"(?P<id>[^\"]+)\"[^>]*>)\s*</table>"
    r"(?P<between>.*?)\$\('#(?P=id)'\)\.bootstrapTable\(\s*Object\.assign\(\s*\{\s*"
    r"columns: (?P<columns>\[.*?\]),\s*data: (?P<data>\[.*?\]),\s*toolbar:",
    re.DOTALL,
)


def make_offline(docs_dir: Path, asset_name: str) -> None:
    """Rewrite every Data Docs page under `docs_dir` in place."""
    for page in docs_dir.rglob("*.html"):
        text = page.read_text(encoding="utf8")
        text = EXTERNAL_TAG.sub("", text)
        text = EXTERNAL_LINK.sub('href="#"', text)
        text = JS_TABLE.sub(_static_table, text)
        text = text.replace("Data asset: None", f"Data asset: {html.escape(asset_name)}")
        page.write_text(text, encoding="utf8")


def _static_table(match: re.Match[str]) -> str:
    """The same columns and rows bootstrap-table would draw, as a plain HTML table."""
    columns = ast.literal_eval(match["columns"])
    rows = ast.literal_eval(match["data"])
    head = "".join(f"<th>{html.escape(c['title'])}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_cell(row, c['field'])}</td>" for c in columns) + "</tr>"
        for row in rows
    )
    table = f"{match[1]}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return table + match["between"] + "$('#" + match["id"] + "').bootstrapTable(Object.assign({"
    " columns: " + match["columns"] + ", data: " + match["data"] + ", toolbar:"


def _cell(row: dict[str, object], field: str) -> str:
    """Cells are GX's own HTML; icons need Font Awesome, so the status becomes a word."""
    if field == "validation_success" and "_validation_success_text" in row:
        return html.escape(str(row["_validation_success_text"]))
    value = str(row.get(field, ""))
    if field == "run_name" and "_table_row_link_path" in row:
        return f'<a href="{html.escape(str(row["_table_row_link_path"]))}">{value}</a>'
    return value

"""The worst misclassified test images, embedded in the offline report.

"Worst" is the most confident mistake: the highest probability given to a wrong class. Those
are the images to look at first (a mislabelled file, a class the model confuses, an input
unlike the training data). The files' own bytes are embedded as data URIs (PNG or JPEG, as
stored), so the report stays one self-contained page with nothing fetched.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence

import numpy as np

from flywheel.data.task import Task

GALLERY_SIZE = 24
MIME = {b"\x89PNG": "image/png", b"\xff\xd8\xff": "image/jpeg"}


def worst_mistakes(y: np.ndarray, proba: np.ndarray, limit: int = GALLERY_SIZE) -> np.ndarray:
    """Row numbers of the misclassified rows, most confident mistake first (ties: row order)."""
    predicted = proba.argmax(axis=1)
    wrong = np.flatnonzero(predicted != y)
    confidence = proba[wrong, predicted[wrong]]
    return wrong[np.argsort(-confidence, kind="stable")][:limit]


def gallery_html(task: Task, y: np.ndarray, proba: np.ndarray, images: Sequence[bytes],
                 names: Sequence[str]) -> str:
    """An HTML section: each of the worst mistakes with its file, true and predicted class."""
    rows = worst_mistakes(np.asarray(y, dtype="int64"), proba)
    if not len(rows):
        return "<h2>Misclassified images</h2>\n<p>None: every test image is classified right.</p>\n"
    figures = "".join(_figure(task, int(y[r]), proba[r], bytes(images[r]), names[r]) for r in rows)
    return (f"<h2>Misclassified images (worst {len(rows)}, most confident first)</h2>\n"
            f"<div class='gallery'>{figures}</div>\n")


def _figure(task: Task, actual: int, proba: np.ndarray, data: bytes, name: str) -> str:
    mime = next((m for magic, m in MIME.items() if data.startswith(magic)), "image/png")
    source = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
    guess = int(proba.argmax())
    caption = (f"{html.escape(name)}<br>true {html.escape(task.classes[actual])}, predicted "
               f"{html.escape(task.classes[guess])} ({proba[guess]:.2f})")
    return (f"<figure><img alt='{html.escape(name)}' src='{source}' "
            f"style='width:84px;image-rendering:pixelated'><figcaption>{caption}</figcaption>"
            "</figure>")

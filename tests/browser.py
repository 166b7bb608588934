"""A page as a user's browser draws it: headless Chromium, offline (every host but loopback
resolves to nothing), its DOM after scripts ran and a screenshot checked for content."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import require_program

OFFLINE = "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", OFFLINE,
         "--window-size=1280,1600", "--virtual-time-budget=8000")


def render(url: str, screenshot: Path) -> str:
    """The page's DOM once its scripts ran; its screenshot written to `screenshot`."""
    chromium = require_program("chromium")
    dom = subprocess.run([chromium, *FLAGS, "--dump-dom", url], capture_output=True,
                         text=True, timeout=180, check=True).stdout
    subprocess.run([chromium, *FLAGS, f"--screenshot={screenshot}", url], capture_output=True,
                   timeout=180, check=True)
    return dom


def drawn_share(png: Path) -> float:
    """Share of the screenshot's pixels that differ from its most common colour (the
    background): a blank or failed page is ~0."""
    from PIL import Image

    with Image.open(png) as image:
        pixels = image.convert("RGB")
        counts = pixels.getcolors(maxcolors=pixels.width * pixels.height) or []
        return 1 - max(n for n, _ in counts) / (pixels.width * pixels.height)

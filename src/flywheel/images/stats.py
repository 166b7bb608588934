"""Per-image statistics: an image dataset's "features".

Great Expectations validates them as a table (the metadata table of every file), the inference
log keeps them instead of raw pixels, and drift compares their distributions exactly as it does
a table's numeric columns. They are cheap, computed from the decoded pixels and the file, and
each moves when a real-world image source changes (another camera's size, a darker sensor,
heavier compression).
"""

from __future__ import annotations

from flywheel.data.spec import FeatureSpec
from flywheel.images.decode import Decoded

STAT_COLUMNS = ("width", "height", "channels", "mean_intensity", "std_intensity", "bytes")


def image_stats(decoded: Decoded) -> dict[str, float]:
    """One image's statistics: stored size, channels and bytes, and its pixels' intensity
    (0-255, over all channels) after the spec's decoding."""
    pixels = decoded.pixels.astype("float64")
    return {
        "width": float(decoded.width),
        "height": float(decoded.height),
        "channels": float(decoded.channels),
        "mean_intensity": float(pixels.mean()),
        "std_intensity": float(pixels.std()),
        "bytes": float(decoded.nbytes),
    }


def stat_features() -> list[FeatureSpec]:
    """The spec's `features` for an image dataset (bounds left to the spec inference)."""
    return [FeatureSpec(name=name, kind="numeric") for name in STAT_COLUMNS]

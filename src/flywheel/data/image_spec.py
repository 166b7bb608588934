"""What an image dataset's files must look like: the `image` block of a dataset spec.

An image dataset is a folder with one subfolder per class holding PNG or JPEG files (the layout
torchvision's `ImageFolder` reads). Its spec is an ordinary classification spec (`target` is the
class, `classes` the subfolders) whose `features` are the per-image statistics
(`images/stats.py`: width, height, channels, mean intensity, ...): validation, the inference
log and drift read those like a table's numeric columns, so images go through the same loop.
This block says what every file must decode to, and how a file that does not is treated.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Pillow's names: "L" is 8-bit grey, "RGB" 8-bit colour.
CHANNELS = {"L": 1, "RGB": 3}


class ImageSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    width: int = Field(ge=1, le=4096, description="pixels every image is (or is resized to)")
    height: int = Field(ge=1, le=4096)
    mode: Literal["L", "RGB"] = Field(description="grey (L) or colour (RGB)")
    resize: Literal["none", "fit"] = Field(
        default="none",
        description="none: another size or mode is a validation error; fit: transparency laid "
        "over background, converted to mode and resized (bilinear) to width x height",
    )
    background: Literal["white", "black"] = Field(
        default="white", description="what a transparent pixel is laid over (resize: fit)"
    )
    extensions: list[str] = Field(default_factory=lambda: [".png", ".jpg", ".jpeg"])
    min_per_class: int = Field(default=10, ge=1, description="fewest images a class may have")
    max_imbalance: float = Field(
        default=20.0, ge=1.0,
        description="largest class count over smallest class count, at most",
    )
    max_bytes: int = Field(default=5_000_000, ge=1, description="largest file or upload accepted")

    def __setstate__(self, state: dict[str, Any]) -> None:
        """A spec pickled before a field existed (a registered model carries its spec) takes
        that field's default, rather than failing when the field is first read."""
        values = state["__dict__"]
        for name, info in type(self).model_fields.items():
            if name not in values:
                values[name] = info.get_default(call_default_factory=True)
        super().__setstate__(state)

    @property
    def channels(self) -> int:
        return CHANNELS[self.mode]

    @model_validator(mode="after")
    def _lowercase_extensions(self) -> ImageSpec:
        if not self.extensions or any(not e.startswith(".") for e in self.extensions):
            raise ValueError(f"extensions must each start with a dot: {self.extensions}")
        self.extensions = [e.lower() for e in self.extensions]
        return self

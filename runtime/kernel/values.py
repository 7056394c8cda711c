"""What a snapshot or a collected result records of a value: what a person chose, as JSON.

A widget gives its `value` (a trait, or a `value` property of a notebook's own widget class, such
as a card whose value is the answer given on it); a container without a value gives its
children's values; an `interactive` gives its keyword values. Media are not choices: an
`Image`, `Video` or `Audio` widget, a widget whose value is bytes, and bytes, bytearray or
memoryview values are recorded as a short reference, :func:`media_reference`, not their bytes
(a labeling stage's photos would otherwise be hundreds of kilobytes per run, twice over).
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import ipywidgets as widgets
from ipywidgets.widgets.widget_media import _Media

MAX_DEPTH = 20
BINARY = (bytes, bytearray, memoryview)
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF8", "image/gif"),
    (b"RIFF", "audio/wav"),
)
OCTETS = "application/octet-stream"


def media_reference(data: bytes | bytearray | memoryview, media: str = "") -> dict[str, Any]:
    """`{"media": "image/png", "sha256": "ab12…", "bytes": 41233}` for binary data.

    `media` is the type when known (a widget's format); else it is read from the data's first
    bytes (PNG, JPEG, GIF, WAV), else `application/octet-stream`.
    """
    raw = bytes(data)
    if not media:
        media = next((kind for magic, kind in _SIGNATURES if raw.startswith(magic)), OCTETS)
    return {"media": media, "sha256": hashlib.sha256(raw).hexdigest(), "bytes": len(raw)}


def is_media_reference(value: Any) -> bool:
    """Whether `value` is what :func:`media_reference` returns."""
    return isinstance(value, dict) and set(value) == {"media", "sha256", "bytes"}


def _widget_media_type(widget: _Media) -> str:
    """`image/png` for an Image with format `png`; empty when the format is a URL or unknown."""
    kind = type(widget).__name__.lower()  # image, video, audio
    fmt = str(getattr(widget, "format", "") or "")
    if not fmt or fmt == "url" or kind not in ("image", "video", "audio"):
        return ""
    return f"{kind}/{'jpeg' if fmt == 'jpg' else fmt}"


def _property_value(widget: widgets.Widget) -> tuple[bool, Any]:
    """(True, value) when the widget's class defines a `value` property (not a trait)."""
    if not isinstance(getattr(type(widget), "value", None), property):
        return False, None
    try:
        return True, widget.value
    except Exception:  # noqa: BLE001 - the notebook's property failed: fall back to children
        return False, None


def json_value(value: Any, depth: int = 0) -> Any:
    """A JSON value for `value`: what a person chose (see the module docstring), else `repr`."""
    if depth > MAX_DEPTH:
        return repr(value)
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, BINARY):
        return media_reference(value)
    if isinstance(value, widgets.interactive):
        return {name: json_value(v, depth + 1) for name, v in value.kwargs.items()}
    if isinstance(value, widgets.Widget):
        return _widget_value(value, depth)
    if isinstance(value, (list, tuple)):
        return [json_value(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {str(k): json_value(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return sorted((json_value(v, depth + 1) for v in value), key=repr)
    tolist = getattr(value, "tolist", None)  # numpy scalars and arrays, pandas Series
    if callable(tolist):
        try:
            return json_value(tolist(), depth + 1)
        except Exception:  # noqa: BLE001 - an odd object: fall back to its repr
            pass
    return repr(value)


def _widget_value(widget: widgets.Widget, depth: int) -> Any:
    if isinstance(widget, _Media):
        value = widget.value
        data = value if isinstance(value, BINARY) else str(value).encode()
        return media_reference(data, _widget_media_type(widget))
    if widget.has_trait("value"):
        return json_value(widget.value, depth + 1)
    has_value, value = _property_value(widget)
    if has_value:
        return json_value(value, depth + 1)
    if isinstance(widget, widgets.Box):
        return [json_value(child, depth + 1) for child in widget.children]
    return repr(widget)

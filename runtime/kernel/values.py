"""What a snapshot or a collected result records of a value: what a person chose, as JSON.

A widget gives its `value` (a trait, or a `value` property of a notebook's own widget class, such
as a card whose value is the answer given on it); a container without a value gives its
children's values; an `interactive` gives its keyword values. Media are not choices: an
`Image`, `Video` or `Audio` widget, a widget whose value is bytes, and bytes, bytearray or
memoryview values are recorded as a short reference, :func:`media_reference`, not their bytes
(a labeling stage's photos would otherwise be hundreds of kilobytes per run, twice over).

A custom widget without a value (an anywidget whose choice is, say, a `selected` trait) gives
its synced traits, :func:`synced_traits`: what its front-end and the person share, without its
front-end code, its look and the widget protocol's own keys. ipywidgets' own widgets without a
value (a Button, an Output) keep their `repr`.
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
INTERNAL_TRAITS = frozenset(
    {"_esm", "_css", "layout", "style", "_dom_classes", "tabbable", "tooltip", "disabled"}
)
"""Synced traits that are not what a custom widget holds: its front-end code, its look, its
focus and tooltip, and `disabled`, which the app sets after Next (docs/custom-widgets.md). Any
other trait whose name starts with `_` (`_model_name`, `_view_count`, `_anywidget_id`, ...) is
the widget protocol's or the library's, and is left out too."""


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


def is_custom(widget: widgets.Widget) -> bool:
    """Whether `widget` is of a class from outside ipywidgets (an anywidget, a notebook's own)
    and has no `value` (neither a trait nor a property); an `Output` never is (its outputs are
    not a choice)."""
    if widget.has_trait("value") or isinstance(getattr(type(widget), "value", None), property):
        return False
    if isinstance(widget, widgets.Output):
        return False
    return type(widget).__module__.split(".")[0] != "ipywidgets"


def synced_traits(widget: widgets.Widget) -> dict[str, Any]:
    """The widget's synced traits (its `keys`) that say what it holds, by name, in order: not
    :data:`INTERNAL_TRAITS`, not the `_`-prefixed ones. Values as the traits hold them."""
    names = dict.fromkeys(str(key) for key in widget.keys)
    return {
        name: getattr(widget, name)
        for name in names
        if not name.startswith("_") and name not in INTERNAL_TRAITS and widget.has_trait(name)
    }


def is_json(value: Any, depth: int = 0) -> bool:
    """Whether `value` is JSON data (None, bool, int, finite float, str, lists and dicts of
    them), binary data (a media reference) or a widget (its value)."""
    if depth > MAX_DEPTH:
        return False
    if value is None or isinstance(value, (bool, int, str, widgets.Widget, *BINARY)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, (list, tuple)):
        return all(is_json(item, depth + 1) for item in value)
    if isinstance(value, dict):
        return all(
            isinstance(key, str) and is_json(item, depth + 1) for key, item in value.items()
        )
    return False


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
    if is_custom(widget):
        return {
            name: json_value(value, depth + 1)
            for name, value in synced_traits(widget).items()
            if is_json(value)
        }
    return repr(widget)

"""The kernel websocket protocol as a browser speaks it: messages, framing, widget state helpers.

- :class:`KernelMessage`: one Jupyter message (channel, header, parent, metadata, content,
  buffers).
- `encode_v1` / `decode_v1`: jupyter_server's `v1.kernel.websocket.jupyter.org` binary frames;
  `encode_legacy` / `decode_legacy`: the older JSON (or JSON + buffers) messages.
- `put_buffers` and `widget_refs`: binary buffers put back into a widget state, and the
  `IPY_MODEL_<id>` references a state holds, as ipywidgets' front-end reads them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

Json = dict[str, Any]

WS_PROTOCOL_V1 = "v1.kernel.websocket.jupyter.org"
KERNEL_PROTOCOL_VERSION = "5.3"
WIDGET_TARGET = "jupyter.widget"
CONTROL_TARGET = "jupyter.widget.control"
WIDGET_VIEW_MIME = "application/vnd.jupyter.widget-view+json"
CELL_OUTPUT_TYPE = "application/vnd.voila.cell-output+json"
OUTPUT_MESSAGES = ("stream", "display_data", "execute_result", "error", "clear_output")
WIDGET_REF_PREFIX = "IPY_MODEL_"


@dataclass
class KernelMessage:
    """One Jupyter message as it travels over the kernel websocket."""

    channel: str
    header: Json
    parent_header: Json = field(default_factory=dict)
    metadata: Json = field(default_factory=dict)
    content: Json = field(default_factory=dict)
    buffers: list[bytes] = field(default_factory=list)

    @property
    def msg_type(self) -> str:
        return str(self.header.get("msg_type", ""))

    @property
    def msg_id(self) -> str:
        return str(self.header.get("msg_id", ""))

    @property
    def parent_id(self) -> str:
        return str(self.parent_header.get("msg_id", ""))


def encode_v1(msg: KernelMessage) -> bytes:
    """Frame a message in jupyter_server's v1 kernel websocket protocol (offsets, then parts)."""
    parts = [
        json.dumps(part).encode()
        for part in (msg.header, msg.parent_header, msg.metadata, msg.content)
    ] + [bytes(b) for b in msg.buffers]
    channel = msg.channel.encode()
    offsets = [8 * (1 + 1 + len(parts) + 1)]
    offsets.append(offsets[-1] + len(channel))
    for part in parts:
        offsets.append(offsets[-1] + len(part))
    head = len(offsets).to_bytes(8, "little") + b"".join(o.to_bytes(8, "little") for o in offsets)
    return b"".join([head, channel, *parts])


def decode_v1(data: bytes) -> KernelMessage:
    """Parse a v1 websocket frame."""
    count = int.from_bytes(data[:8], "little")
    offsets = [int.from_bytes(data[8 * (i + 1) : 8 * (i + 2)], "little") for i in range(count)]
    channel = data[offsets[0] : offsets[1]].decode()
    parts = [data[offsets[i] : offsets[i + 1]] for i in range(1, count - 1)]
    header, parent, metadata, content = (json.loads(p) if p else {} for p in parts[:4])
    return KernelMessage(channel, header, parent or {}, metadata, content, list(parts[4:]))


def decode_legacy(data: str | bytes) -> KernelMessage:
    """Parse a message of the legacy protocol: JSON text, or binary with buffers."""
    buffers: list[bytes] = []
    if isinstance(data, bytes):
        count = int.from_bytes(data[:4], "big")
        offsets = [int.from_bytes(data[4 * (i + 1) : 4 * (i + 2)], "big") for i in range(count)]
        offsets.append(len(data))
        msg = json.loads(data[offsets[0] : offsets[1]])
        buffers = [data[offsets[i] : offsets[i + 1]] for i in range(1, count)]
    else:
        msg = json.loads(data)
    return KernelMessage(
        msg.get("channel") or "shell",
        msg["header"],
        msg.get("parent_header") or {},
        msg.get("metadata") or {},
        msg.get("content") or {},
        buffers,
    )


def encode_legacy(msg: KernelMessage) -> str:
    """A message in the legacy JSON protocol (widget messages this client sends have no buffers)."""
    return json.dumps(
        {
            "channel": msg.channel,
            "header": msg.header,
            "parent_header": msg.parent_header,
            "metadata": msg.metadata,
            "content": msg.content,
            "buffers": [],
        }
    )


def put_buffers(
    state: Json, buffer_paths: Sequence[Sequence[Any]], buffers: Sequence[bytes]
) -> None:
    """Put binary buffers back into a widget state at their paths (as ipywidgets does)."""
    for path, buffer in zip(buffer_paths, buffers, strict=False):
        if not path:
            continue
        target: Any = state
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = bytes(buffer)


def widget_refs(value: Any) -> list[str]:
    """Model ids referenced (`IPY_MODEL_<id>`) anywhere in a state value."""
    if isinstance(value, str):
        return [value[len(WIDGET_REF_PREFIX) :]] if value.startswith(WIDGET_REF_PREFIX) else []
    if isinstance(value, dict):
        return [ref for item in value.values() for ref in widget_refs(item)]
    if isinstance(value, list | tuple):
        return [ref for item in value for ref in widget_refs(item)]
    return []

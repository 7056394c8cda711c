"""The widget states a browser's widget manager holds, kept from kernel messages.

:class:`WidgetManager` is the model half of a page's front-end, with no I/O: it applies
`comm_open` / `comm_msg` (`update`, `echo_update`) / `comm_close` and output messages to plain
dict states, routes outputs into Output widgets as ipywidgets does (merging streams, honouring
`clear_output(wait=True)`), and answers the questions tests ask (`find`, `value`,
`output_text`, ...). :class:`~tests.support.session.PageSession` adds the websocket.
"""

from __future__ import annotations

from typing import Any

from tests.support.errors import ClientError
from tests.support.protocol import (
    OUTPUT_MESSAGES,
    WIDGET_TARGET,
    Json,
    KernelMessage,
    put_buffers,
    widget_refs,
)


class WidgetManager:
    """Widget states by model id (see the module docstring)."""

    def __init__(self) -> None:
        self.widgets: dict[str, Json] = {}
        self.kernel_errors: list[Json] = []  # `error` outputs no Output widget captured
        self.stray_outputs: list[Json] = []  # other outputs no Output widget captured
        self.stderr: dict[str, str] = {}  # stderr text by the request it answers (e.g. the
        # server's "not applied" notices for a message it dropped)
        self._output_routes: dict[str, str] = {}  # parent msg id -> Output model id
        self._clear_next: set[str] = set()  # Output models with a pending clear_output(wait)
        # (model id, state key) -> msg_id of this page's latest update of it, until its echo
        self._unechoed: dict[tuple[str, str], str] = {}
        self.custom: list[tuple[str, Json]] = []  # (model id, content) of custom messages the
        # kernel side of widgets sent (a browser hands them to the widget's `msg:custom` listeners)

    # -- reading state

    def find_all(
        self, model_name: str | None = None, description: str | None = None, **state: Any
    ) -> list[str]:
        """Ids of the widgets whose `_model_name`, `description` and other state match."""
        wanted = dict(state)
        if model_name is not None:
            wanted["_model_name"] = model_name
        if description is not None:
            wanted["description"] = description
        return [
            model_id
            for model_id, current in self.widgets.items()
            if all(current.get(key) == value for key, value in wanted.items())
        ]

    def find(
        self, model_name: str | None = None, description: str | None = None, **state: Any
    ) -> str:
        """The id of the one widget that matches (see :meth:`find_all`); else ClientError."""
        found = self.find_all(model_name, description, **state)
        if len(found) != 1:
            wanted = {"model_name": model_name, "description": description, **state}
            raise ClientError(
                f"{len(found)} widgets match {wanted}; the page has {self.describe()}"
            )
        return found[0]

    def value(self, model_id: str) -> Any:
        """A widget's current `value`."""
        return self._require(model_id).get("value")

    def outputs(self, model_id: str) -> list[Json]:
        """The outputs an Output widget shows."""
        return list(self._require(model_id).get("outputs") or [])

    def output_text(self, model_id: str) -> str:
        """The text an Output widget shows: streams, `text/plain` data and error names."""
        texts = []
        for output in self.outputs(model_id):
            if output.get("output_type") == "stream":
                texts.append(str(output.get("text", "")))
            elif output.get("output_type") == "error":
                texts.append(f"{output.get('ename')}: {output.get('evalue')}\n")
            else:
                texts.append(str((output.get("data") or {}).get("text/plain", "")))
        return "".join(texts)

    def descendants(self, model_id: str) -> list[str]:
        """Model ids a widget refers to (children, layout, style, ...), depth first."""
        seen: list[str] = []
        pending = [model_id]
        while pending:
            current = pending.pop()
            for ref in widget_refs(self.widgets.get(current, {})):
                if ref not in seen and ref != model_id:
                    seen.append(ref)
                    pending.append(ref)
        return seen

    def describe(self) -> str:
        """A short summary of the widgets, for error messages."""
        items = [
            f"{state.get('_model_name')}({state.get('description')!r}, {state.get('value')!r})"
            for state in self.widgets.values()
            if state.get("_model_name") not in ("LayoutModel", "StyleModel")
            and not str(state.get("_model_name", "")).endswith("StyleModel")
        ]
        return "[" + ", ".join(items) + "]"

    def _require(self, model_id: str) -> Json:
        if model_id not in self.widgets:
            raise ClientError(f"no widget {model_id} on the page; it has {self.describe()}")
        return self.widgets[model_id]

    # -- changing state

    def _set_state(self, model_id: str, state: Json) -> None:
        current = self.widgets.setdefault(model_id, {})
        current.update(state)
        if current.get("_model_name") == "OutputModel" and "msg_id" in state:
            for parent, target in list(self._output_routes.items()):
                if target == model_id:
                    del self._output_routes[parent]
            if state["msg_id"]:
                self._output_routes[str(state["msg_id"])] = model_id

    def _sent_update(self, comm_id: str, state: Json, msg_id: str) -> None:
        """Note an `update` this page sent, so that an older echo of it does not undo it."""
        for key in state or {}:
            self._unechoed[(comm_id, key)] = msg_id

    def _apply(self, msg: KernelMessage) -> tuple[str, list[Json]] | None:
        """Apply a kernel message to the widget states. Returns `(model id, outputs)` when an
        Output widget must sync its outputs back to the kernel (as the browser's OutputModel
        does), else None."""
        kind = msg.msg_type
        if kind == "comm_open" and msg.content.get("target_name") == WIDGET_TARGET:
            data = msg.content.get("data") or {}
            state = dict(data.get("state") or {})
            put_buffers(state, data.get("buffer_paths") or [], msg.buffers)
            self._set_state(str(msg.content["comm_id"]), state)
        elif kind == "comm_msg":
            self._apply_comm_msg(msg)
        elif kind == "comm_close":
            comm_id = str(msg.content.get("comm_id"))
            self.widgets.pop(comm_id, None)
        elif kind in OUTPUT_MESSAGES:
            if kind == "stream" and msg.content.get("name") == "stderr" and msg.parent_id:
                self.stderr[msg.parent_id] = self.stderr.get(msg.parent_id, "") + str(
                    msg.content.get("text", "")
                )
            return self._apply_output(msg)
        return None

    def _apply_comm_msg(self, msg: KernelMessage) -> None:
        comm_id = str(msg.content.get("comm_id"))
        data = msg.content.get("data") or {}
        if data.get("method") == "custom" and isinstance(data.get("content"), dict):
            self.custom.append((comm_id, data["content"]))
        if data.get("method") in ("update", "echo_update") and comm_id in self.widgets:
            state = dict(data.get("state") or {})
            put_buffers(state, data.get("buffer_paths") or [], msg.buffers)
            if data.get("method") == "echo_update":
                state = self._foreign_echo(comm_id, state, msg.parent_id)
            self._set_state(comm_id, state)

    def _foreign_echo(self, comm_id: str, state: Json, parent_id: str) -> Json:
        """What the browser's widget manager keeps of an `echo_update`: keys this page changed
        itself are already applied, and an echo of an older change of ours must not undo a
        newer one still in flight; other pages' changes apply."""
        kept: Json = {}
        for key, value in state.items():
            latest = self._unechoed.get((comm_id, key))
            if latest is None:
                kept[key] = value
            elif latest == parent_id:
                del self._unechoed[(comm_id, key)]
        return kept

    def _apply_output(self, msg: KernelMessage) -> tuple[str, list[Json]] | None:
        model_id = self._output_routes.get(msg.parent_id)
        if model_id is None or model_id not in self.widgets:
            target = self.kernel_errors if msg.msg_type == "error" else self.stray_outputs
            target.append({"output_type": msg.msg_type, **msg.content})
            return None
        # What the browser's OutputModel does: add (merging streams), clear, sync back.
        state = self.widgets[model_id]
        outputs: list[Json] = list(state.get("outputs") or [])
        if msg.msg_type == "clear_output":
            if msg.content.get("wait"):
                self._clear_next.add(model_id)
            else:
                outputs = []
        else:
            if model_id in self._clear_next:
                self._clear_next.discard(model_id)
                outputs = []
            output = {"output_type": msg.msg_type, **msg.content}
            output.pop("transient", None)
            last = outputs[-1] if outputs else None
            if (
                msg.msg_type == "stream"
                and last is not None
                and last.get("output_type") == "stream"
                and last.get("name") == output.get("name")
            ):
                outputs[-1] = {
                    **last,
                    "text": str(last.get("text", "")) + str(output.get("text", "")),
                }
            else:
                outputs.append(output)
        state["outputs"] = outputs
        return model_id, outputs

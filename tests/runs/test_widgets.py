"""The kernel's widget book: creation ordinals, and the replay's front-end of `Output` widgets
(what nbclient does with outputs whose parent is an Output's `msg_id`). In-process, no kernel."""

from __future__ import annotations

from runtime.protocol import COMM_TARGET, WIDGET_TARGET
from runtime.runs.widgets import WidgetBook


def opened(book: WidgetBook, comm_id: str, model: str = "IntSliderModel", **state: str) -> None:
    book.opened({"comm_id": comm_id, "target_name": WIDGET_TARGET,
                 "data": {"state": {"_model_name": model, **state}}})


def test_widgets_are_numbered_in_creation_order_and_the_runners_comm_is_not() -> None:
    book = WidgetBook()
    opened(book, "a")
    book.opened({"comm_id": "run", "target_name": COMM_TARGET, "data": {}})
    book.opened({"comm_id": "other", "target_name": "jupyter.widget.control"})
    opened(book, "b")
    assert (book.ordinal_of("a"), book.ordinal_of("b"), book.ordinal_of("run")) == (0, 1, None)
    assert (book.comm_of(0), book.comm_of(1), book.comm_of(2), book.comm_of(-1)) == \
        ("a", "b", None, None)
    assert book.runner_comms == {"run"}


def test_outputs_go_to_the_output_widget_that_captures_their_parent() -> None:
    book = WidgetBook()
    opened(book, "out", "OutputModel", msg_id="cell-1")
    assert book.route_output("stream", {"name": "stdout", "text": "x"}, "cell-2") is None
    book.route_output("stream", {"name": "stdout", "text": "a"}, "cell-1")
    widget = book.route_output("stream", {"name": "stdout", "text": "b"}, "cell-1")
    assert widget is not None and widget.outputs == [
        {"output_type": "stream", "name": "stdout", "text": "ab"}
    ]
    book.route_output("display_data", {"data": {}, "transient": {"display_id": "d"}}, "cell-1")
    assert widget.outputs[-1] == {"output_type": "display_data", "data": {}}
    assert book.route_output("update_display_data", {"data": {}}, "cell-1") is None


def test_clear_output_waits_for_the_next_output_when_asked_to() -> None:
    book = WidgetBook()
    opened(book, "out", "OutputModel", msg_id="m")
    book.route_output("stream", {"name": "stdout", "text": "old"}, "m")
    assert book.route_output("clear_output", {"wait": True}, "m") is None
    assert book.outputs["out"].outputs  # still shown until the next output
    widget = book.route_output("stream", {"name": "stdout", "text": "new"}, "m")
    assert widget is not None and [o["text"] for o in widget.outputs] == ["new"]
    cleared = book.route_output("clear_output", {"wait": False}, "m")
    assert cleared is not None and cleared.outputs == []


def test_the_kernel_sets_an_output_widgets_capture_and_outputs() -> None:
    book = WidgetBook()
    opened(book, "out", "OutputModel")
    book.output_state("out", {"method": "update", "state": {"msg_id": "m2"}})
    assert book.route_output("stream", {"name": "stdout", "text": "x"}, "m2") is not None
    book.output_state("out", {"method": "update", "state": {"outputs": []}})
    assert book.outputs["out"].outputs == []
    book.output_state("out", {"method": "echo_update", "state": {"msg_id": None}})
    assert book.outputs["out"].msg_id == ""

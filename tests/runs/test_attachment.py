"""`admit()`, rule by rule and at each boundary, and how a page's attachment numbers the widgets
it was shown: in-process, no kernel, the time passed in.

The kernel's iopub stream is played to the two readers the server has: the listener's
`WidgetBook` (`listener_reads`) and the page's relay (`page_shown`), each in stream order and
each at its own pace, as two sockets of one process are.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from runtime.protocol import COMM_TARGET, WIDGET_CONTROL_TARGET, WIDGET_TARGET
from runtime.runs.attachment import (
    BROWSER_MESSAGE_TYPES,
    FLOODED,
    PENDING,
    Action,
    Attachment,
    BrowserMessage,
    admit,
)
from runtime.runs.ratelimit import TokenBucket
from runtime.runs.widgets import WidgetBook

Json = dict[str, Any]
_ids = itertools.count()


def iopub(msg_type: str, content: Json | None = None) -> tuple[Json, Json | None]:
    """One kernel iopub message: its header and content."""
    return {"msg_type": msg_type, "msg_id": f"k_{next(_ids)}"}, content


def widget_open(comm_id: str, model: str = "IntSliderModel") -> tuple[Json, Json | None]:
    return iopub("comm_open", {"comm_id": comm_id, "target_name": WIDGET_TARGET,
                               "data": {"state": {"_model_name": model}}})


def listener_reads(book: WidgetBook, *messages: tuple[Json, Json | None]) -> None:
    """What the listener's `_read` does with each message, in order."""
    for header, content in messages:
        if header["msg_type"] == "comm_open" and content is not None:
            book.opened(content)
        book.seen(header["msg_id"])


def page_shown(page: Attachment, *messages: tuple[Json, Json | None]) -> list[bool]:
    """What the websocket does with each relayed message; which ones the page must not see."""
    return [page.shown(header, content) for header, content in messages]


def browser(msg_type: str, content: Json | None = None, *, channel: str = "shell",
            size: int = 100) -> BrowserMessage:
    return BrowserMessage(size, msg_type, channel, {"msg_type": msg_type}, content or {})


def update(comm_id: str, state: Json | None = None, method: str = "update") -> BrowserMessage:
    return browser("comm_msg", {"comm_id": comm_id,
                                "data": {"method": method, "state": state or {"value": 1}}})


def attached(book: WidgetBook | None = None, **kwargs: Any) -> Attachment:
    return Attachment(book or WidgetBook(), **kwargs)


# --- size --------------------------------------------------------------------------------------

def test_a_message_of_exactly_the_limit_passes_and_one_byte_more_is_refused_and_told() -> None:
    page = attached(max_size=1000)
    assert admit(browser("kernel_info_request", size=1000), page, 0).action is Action.FORWARD
    refused = admit(BrowserMessage(1001), page, 0)
    assert refused.action is Action.REFUSE
    assert "1,001 bytes" in refused.tell and "at most 1,000" in refused.tell
    assert page.over_size(1001) and not page.over_size(1000)


def test_a_zero_size_limit_means_no_limit() -> None:
    page = attached(max_size=0)
    assert not page.over_size(10**9)
    assert admit(browser("kernel_info_request", size=10**9), page, 0).action is Action.FORWARD


# --- allowlist ---------------------------------------------------------------------------------

@pytest.mark.parametrize("msg_type", sorted(BROWSER_MESSAGE_TYPES))
def test_the_allowed_message_types_pass(msg_type: str) -> None:
    content = {"comm_id": "c1", "target_name": WIDGET_TARGET, "data": {}}
    assert admit(browser(msg_type, content), attached(), 0).action is not Action.REFUSE


@pytest.mark.parametrize("msg_type", ["execute_request", "shutdown_request", "input_reply",
                                      "interrupt_request", "history_request", ""])
def test_other_message_types_are_refused_and_logged(msg_type: str) -> None:
    decision = admit(browser(msg_type), attached(), 0)
    assert decision.action is Action.REFUSE
    assert "message type not allowed" in decision.why
    assert decision.tell == ""


@pytest.mark.parametrize(("channel", "allowed"), [("shell", True), ("control", True),
                                                  ("stdin", False), ("iopub", False)])
def test_only_the_shell_and_control_channels_are_allowed(channel: str, allowed: bool) -> None:
    decision = admit(browser("kernel_info_request", channel=channel), attached(), 0)
    assert (decision.action is not Action.REFUSE) is allowed


@pytest.mark.parametrize(("target", "allowed"), [
    (WIDGET_TARGET, True), (WIDGET_CONTROL_TARGET, True), (COMM_TARGET, False),
    ("jupyter.widget.other", False), (None, False),
])
def test_a_page_opens_only_widget_comms(target: str | None, allowed: bool) -> None:
    decision = admit(browser("comm_open", {"comm_id": "p1", "target_name": target}),
                     attached(), 0)
    assert (decision.action is not Action.REFUSE) is allowed


@pytest.mark.parametrize("msg_type", ["comm_msg", "comm_close"])
def test_the_runners_comm_is_not_the_pages(msg_type: str) -> None:
    book = WidgetBook()
    relayed = attached(book)
    known = attached(book)
    runner_open = iopub("comm_open", {"comm_id": "run1", "target_name": COMM_TARGET})
    assert page_shown(relayed, runner_open) == [True]  # hidden from the page
    listener_reads(book, iopub("comm_open", {"comm_id": "run2", "target_name": COMM_TARGET}))
    for page, comm in ((relayed, "run1"), (known, "run2")):
        decision = admit(browser(msg_type, {"comm_id": comm, "data": {}}), page, 0)
        assert decision.action is Action.REFUSE and "runner" in decision.why
    assert admit(browser(msg_type, {"comm_id": "w", "data": {}}), known, 0).action \
        is not Action.REFUSE


def test_the_runners_comm_messages_are_hidden_from_the_page_and_others_are_not() -> None:
    page = attached()
    shown = page_shown(
        page,
        iopub("comm_open", {"comm_id": "run", "target_name": COMM_TARGET}),
        iopub("comm_msg", {"comm_id": "run", "data": {"event": "stage_ready"}}),
        widget_open("w"),
        iopub("comm_msg", {"comm_id": "w", "data": {"method": "update"}}),
        iopub("status", None),
        iopub("comm_close", {"comm_id": "run"}),
    )
    assert shown == [True, True, False, False, False, True]


def test_comm_data_that_is_not_an_object_is_refused() -> None:
    decision = admit(browser("comm_msg", {"comm_id": "w", "data": [1, 2]}), attached(), 0)
    assert decision.action is Action.REFUSE and "malformed" in decision.why


@pytest.mark.parametrize("content", [
    {"comm_id": "c", "target_name": [WIDGET_TARGET], "data": {}},
    {"comm_id": "c", "target_name": {"a": 1}},
])
def test_a_comm_target_that_is_not_a_name_is_refused(content: Json) -> None:
    assert admit(browser("comm_open", content), attached(), 0).action is Action.REFUSE


def test_a_method_that_is_not_a_name_is_forwarded_unjournaled() -> None:
    message = browser("comm_msg", {"comm_id": "w", "data": {"method": ["update"]}})
    assert admit(message, attached(), 0).action is Action.FORWARD


# --- flood limit -------------------------------------------------------------------------------

def test_the_flood_limit_lets_a_burst_through_then_refuses_and_tells_once() -> None:
    bucket = TokenBucket(rate=10.0, burst=3.0, clock=lambda: 0.0)
    page = attached(bucket=bucket)
    message = browser("comm_info_request")
    assert [admit(message, page, 0).action for _ in range(3)] == [Action.FORWARD] * 3
    first, second = admit(message, page, 0), admit(message, page, 0)
    assert first.action is Action.REFUSE and first.tell == FLOODED and first.why
    assert second.action is Action.REFUSE and second.tell == "" and second.why == ""
    assert admit(message, page, 0.05).action is Action.REFUSE  # half a token back
    assert [admit(message, page, 0.25).action for _ in range(2)] == [Action.FORWARD] * 2
    assert not page.flooding
    again = admit(message, page, 0.25)  # a new flood is told again
    assert again.action is Action.REFUSE and again.tell == FLOODED


def test_a_runs_pages_share_one_flood_limit_and_each_is_told() -> None:
    bucket = TokenBucket(rate=1.0, burst=2.0, clock=lambda: 0.0)
    tab1, tab2 = attached(bucket=bucket), attached(bucket=bucket)
    message = browser("comm_info_request")
    assert admit(message, tab1, 0).action is Action.FORWARD
    assert admit(message, tab2, 0).action is Action.FORWARD
    assert admit(message, tab1, 0).tell == FLOODED
    assert admit(message, tab2, 0).tell == FLOODED


def test_refused_messages_do_not_spend_the_flood_limit() -> None:
    page = attached(bucket=TokenBucket(rate=1.0, burst=1.0, clock=lambda: 0.0))
    for _ in range(5):
        assert admit(browser("execute_request"), page, 0).action is Action.REFUSE
    assert admit(browser("kernel_info_request"), page, 0).action is Action.FORWARD


def test_no_bucket_means_no_flood_limit() -> None:
    page = attached(bucket=None)
    assert all(admit(browser("comm_info_request"), page, 0).action is Action.FORWARD
               for _ in range(10_000))


# --- journal decision --------------------------------------------------------------------------

@pytest.fixture
def shown_page() -> Attachment:
    """A page whose kernel created a slider and an Output widget, both read by the listener."""
    book = WidgetBook()
    page = attached(book)
    messages = (widget_open("slider"), widget_open("out", "OutputModel"))
    page_shown(page, *messages)
    listener_reads(book, *messages)
    return page


@pytest.mark.parametrize("method", ["update", "custom"])
def test_a_change_to_a_kernel_widget_is_journaled_with_its_ordinal(
    shown_page: Attachment, method: str
) -> None:
    decision = admit(update("slider", method=method), shown_page, 0)
    assert (decision.action, decision.ordinal) == (Action.JOURNAL, 0)
    decision = admit(update("out", {"layout": "x"}, method=method), shown_page, 0)
    assert (decision.action, decision.ordinal) == (Action.JOURNAL, 1)


def test_a_request_for_state_is_forwarded_unjournaled(shown_page: Attachment) -> None:
    for method in ("request_state", "echo_update", None):
        decision = admit(update("slider", method=method), shown_page, 0)  # type: ignore[arg-type]
        assert decision.action is Action.FORWARD


def test_the_outputs_a_page_writes_into_an_output_widget_are_not_journaled(
    shown_page: Attachment,
) -> None:
    for state in ({"outputs": []}, {"outputs": [], "msg_id": ""}, {"msg_id": "m"}):
        assert admit(update("out", state), shown_page, 0).action is Action.FORWARD
    assert admit(update("out", {"outputs": [], "layout": "x"}), shown_page, 0).action \
        is Action.JOURNAL
    assert admit(update("slider", {"outputs": []}), shown_page, 0).action is Action.JOURNAL


def test_messages_to_a_comm_the_page_opened_are_not_journaled(shown_page: Attachment) -> None:
    opened = browser("comm_open", {"comm_id": "mine", "target_name": WIDGET_CONTROL_TARGET})
    assert admit(update("mine"), shown_page, 0).action is Action.JOURNAL  # not opened yet
    assert admit(opened, shown_page, 0).action is Action.FORWARD
    assert admit(update("mine"), shown_page, 0).action is Action.FORWARD


def test_a_flooded_comm_open_is_not_taken_for_the_pages_own() -> None:
    page = attached(bucket=TokenBucket(rate=1.0, burst=1.0, clock=lambda: 0.0))
    assert admit(browser("kernel_info_request"), page, 0).action is Action.FORWARD
    opened = browser("comm_open", {"comm_id": "c", "target_name": WIDGET_TARGET})
    assert admit(opened, page, 0).action is Action.REFUSE
    assert "c" not in page.browser_comms


@pytest.mark.parametrize("msg_type", ["comm_open", "comm_close", "comm_info_request",
                                      "kernel_info_request"])
def test_only_comm_msg_is_ever_journaled(shown_page: Attachment, msg_type: str) -> None:
    content = {"comm_id": "slider", "target_name": WIDGET_TARGET, "data": {"method": "update"}}
    assert admit(browser(msg_type, content), shown_page, 0).action is Action.FORWARD


# --- the ordinal of a widget the page was shown ------------------------------------------------

def test_a_widget_the_listener_has_not_read_yet_has_its_ordinal_at_once() -> None:
    book = WidgetBook()
    before = [widget_open(f"old{i}") for i in range(5)]
    listener_reads(book, *before)  # created before the page connected
    page = attached(book)
    status = iopub("status", None)
    page_shown(page, status)
    listener_reads(book, status)  # the first message both read lines the page up
    new = [widget_open("new0"), iopub("status", None), widget_open("new1")]
    page_shown(page, *new)  # the listener is held back: it has read none of these
    assert book.ordinal_of("new1") is None
    decision = admit(update("new1"), page, 0)
    assert (decision.action, decision.ordinal) == (Action.JOURNAL, 6)
    assert page.ordinal_of("new0") == 5
    listener_reads(book, *new)
    assert (book.ordinal_of("new0"), book.ordinal_of("new1")) == (5, 6)
    assert page.misaligned == 0


def test_the_page_lines_up_when_the_listener_reads_a_message_after_the_page_did() -> None:
    book = WidgetBook()
    listener_reads(book, widget_open("a"), widget_open("b"))
    page = attached(book)
    later = [iopub("status", None), widget_open("c"), widget_open("d")]
    page_shown(page, *later)
    assert page.ordinal_of("d") is None  # nothing read by both yet: not known
    assert admit(update("d"), page, 0).ordinal is None
    listener_reads(book, later[0])  # the status message: lined up, c and d still unread
    assert (page.ordinal_of("c"), page.ordinal_of("d")) == (2, 3)


def test_a_page_behind_the_listener_lines_up_on_what_the_listener_remembers() -> None:
    book = WidgetBook()
    messages = [widget_open("a"), iopub("status", None), widget_open("b"), widget_open("c")]
    listener_reads(book, *messages)
    page = attached(book)
    page_shown(page, *messages[1:])  # the page connected after `a`, and lags
    page_shown(page, widget_open("d"))  # not read by the listener yet
    assert page.ordinal_of("b") == 1
    assert page.ordinal_of("d") == 3  # a, b, c before it


def test_a_page_that_lost_a_relayed_widget_lines_up_again_on_the_next_one() -> None:
    book = WidgetBook()
    page = attached(book)
    start = iopub("status", None)
    page_shown(page, start)
    listener_reads(book, start)
    lost, kept = widget_open("lost"), widget_open("kept")
    page_shown(page, kept)  # the page's socket dropped `lost`
    assert page.ordinal_of("kept") == 0  # wrong, and cannot be known to be wrong yet
    listener_reads(book, lost, kept)
    assert page.ordinal_of("kept") == 1 and page.misaligned == 1
    page_shown(page, widget_open("next"))
    assert page.ordinal_of("next") == 2


def test_a_page_forgets_old_message_ids_while_not_lined_up() -> None:
    book = WidgetBook()
    page = attached(book)
    first = iopub("status", None)
    page_shown(page, first, *(iopub("status", None) for _ in range(PENDING)))
    page_shown(page, widget_open("w"))
    listener_reads(book, first)  # too old: the page no longer holds it
    assert page.ordinal_of("w") is None


def test_a_closed_page_is_no_longer_told() -> None:
    book = WidgetBook()
    page, other = attached(book), attached(book)
    status = iopub("status", None)
    page_shown(page, status, widget_open("w"))
    page_shown(other, status, widget_open("w"))
    page.close()
    listener_reads(book, status)
    assert page.ordinal_of("w") is None
    assert other.ordinal_of("w") == 0

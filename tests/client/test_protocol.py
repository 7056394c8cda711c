"""Pure parts of the client: websocket framing, page parsing, cookies."""

from __future__ import annotations

from tornado.httpclient import HTTPRequest, HTTPResponse
from tornado.httputil import HTTPHeaders

from tests.support.pages import CookieJar, parse_page
from tests.support.protocol import (
    KernelMessage,
    decode_legacy,
    decode_v1,
    encode_v1,
    put_buffers,
    widget_refs,
)


def test_v1_frames_round_trip_with_buffers() -> None:
    msg = KernelMessage(
        "shell",
        {"msg_id": "a", "msg_type": "comm_msg"},
        {"msg_id": "p"},
        {},
        {"comm_id": "c", "data": {"method": "update", "state": {"value": 1}}},
        [b"\x00\x01", b"xyz"],
    )
    decoded = decode_v1(encode_v1(msg))
    assert decoded == msg
    assert decoded.parent_id == "p"


def test_legacy_text_messages_decode() -> None:
    msg = decode_legacy('{"channel": "iopub", "header": {"msg_type": "status"}, "content": {}}')
    assert (msg.channel, msg.msg_type, msg.buffers) == ("iopub", "status", [])


def test_buffers_go_back_to_their_paths() -> None:
    state = {"m1": {"state": {"value": None}}}
    put_buffers(state, [["m1", "state", "value"]], [b"png"])
    assert state["m1"]["state"]["value"] == b"png"


def test_widget_references_are_found_in_nested_state() -> None:
    state = {"children": ["IPY_MODEL_a", "IPY_MODEL_b"], "layout": "IPY_MODEL_c", "value": 3}
    assert widget_refs(state) == ["a", "b", "c"]


PAGE = """<html><body>
<form><input type="hidden" name="_xsrf" value="tok"></form>
<script id="jupyter-config-data" type="application/json">{"kernelId": "k-1", "baseUrl": "/"}
</script>
<script type="application/vnd.voila.cell-output+json">
{"output_type": "display_data",
 "data": {"application/vnd.jupyter.widget-view+json": {"model_id": "m1"}}}
</script>
<script type="application/vnd.voila.cell-output+json">
{"output_type": "stream", "name": "stdout", "text": "</b>"}
</script>
</body></html>"""


def test_a_page_gives_its_kernel_widget_views_and_xsrf() -> None:
    page = parse_page("http://x/", 200, PAGE)
    assert page.kernel_id == "k-1"
    assert page.shown_model_ids == ["m1"]
    assert len(page.outputs) == 2
    assert page.xsrf == "tok"


def test_a_page_without_voila_config_has_no_kernel() -> None:
    page = parse_page("http://x/", 200, "<html><p>sign in</p></html>")
    assert page.kernel_id is None
    assert page.shown_model_ids == []


def response_setting(*cookies: str) -> HTTPResponse:
    headers = HTTPHeaders()
    for cookie in cookies:
        headers.add("Set-Cookie", cookie)
    return HTTPResponse(HTTPRequest("http://x/"), 200, headers=headers)


def test_cookies_are_kept_as_sent_and_dropped_when_expired() -> None:
    jar = CookieJar()
    jar.update(response_setting('user="2|1:0|10:17|4:user|8:YWxpY2U=|ab12"; HttpOnly; Path=/'))
    jar.update(response_setting("_xsrf=2|aa|bb|cc; Path=/"))
    assert jar.header() == 'user="2|1:0|10:17|4:user|8:YWxpY2U=|ab12"; _xsrf=2|aa|bb|cc'
    assert jar.get("user") == "2|1:0|10:17|4:user|8:YWxpY2U=|ab12"
    jar.update(response_setting('user=""; expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/'))
    assert jar.get("user") is None
    assert CookieJar(jar.as_dict()).header() == "_xsrf=2|aa|bb|cc"

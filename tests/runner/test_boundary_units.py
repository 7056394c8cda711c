"""The hand-over's pure parts, without a kernel: `Boundary` and `Gate` on plain widgets."""

from __future__ import annotations

from typing import Any

import ipywidgets as w

from runtime.kernel.boundary import Boundary
from runtime.kernel.gate import Gate, find_gate


def test_a_boundary_freezes_what_was_bound_at_next() -> None:
    first = w.IntSlider(description="first")
    ns: dict[str, Any] = {"s": first, "picks": [w.Checkbox(), {"deep": w.Checkbox()}]}
    boundary = Boundary(["s", "picks", "s"], ns)
    assert boundary.names == ("s", "picks")
    first.value = 3
    assert boundary.capture(ns) == {"s": 3, "picks": [False, {"deep": False}]}
    ns["s"] = second = w.IntSlider(description="second")  # the next stage rebinds it
    boundary.disable()
    assert first.disabled and not second.disabled
    assert ns["picks"][0].disabled and ns["picks"][1]["deep"].disabled


def test_untouched_means_every_value_is_still_its_default() -> None:
    ns: dict[str, Any] = {"a": w.IntSlider(value=2), "notes": []}
    boundary = Boundary(["a", "notes"], ns)
    boundary.capture(ns)
    assert boundary.untouched()
    ns["notes"].append("x")
    boundary.failed(ns)
    boundary.capture(ns)
    assert not boundary.untouched()
    assert not Boundary([], ns).untouched()  # nothing waited on: not the person's turn


def test_a_retry_rebinds_the_boundary_objects_unless_a_callback_rebound_them() -> None:
    first, data = w.IntSlider(value=1), [1]
    ns: dict[str, Any] = {"s": first, "data": data}
    boundary = Boundary(["s", "data"], ns)
    boundary.capture(ns)
    ns["s"] = w.IntSlider(value=9)  # the failed stage rebound `s`
    boundary.failed(ns)
    ns["data"] = [1, 2]  # a callback rebound `data` after the failure
    assert boundary.capture(ns) == {"s": 1, "data": [1, 2]}
    assert ns["s"] is first


def test_a_gate_counts_a_click_that_arrived_while_it_was_enabled() -> None:
    go = w.Button(description="Run", disabled=True)
    go.on_click(lambda b: setattr(b, "disabled", True))  # the author's double-click guard
    nxt = w.Button(description="Next")
    passes: list[w.Button] = []

    def advance(button: w.Button) -> None:
        passes.append(button)
        gate.release()

    gate = Gate(go, advance)
    gate.arm(nxt)
    assert nxt.disabled and gate.label == "Run"
    go.click()
    assert passes == []
    go.disabled = False
    assert not nxt.disabled
    go.click()
    assert passes == [nxt] and nxt.disabled
    go.disabled = False
    go.click()
    assert passes == [nxt]  # released: the gate no longer listens
    assert nxt.disabled  # nor follows


def test_a_gate_name_must_be_a_button() -> None:
    button = w.Button()
    assert find_gate({"go": button}, "go") is button
    assert find_gate({"go": w.Text()}, "go") is None
    assert find_gate({}, None) is None

"""The server is SIGKILLed while people are mid-stage and clicking; nothing they did is lost.

Five simulated people (protocol clients: HTTP + kernel websocket + widget messages) each move
sliders and click Next as fast as the server acknowledges. Once enough actions are acknowledged
the server and every kernel get SIGKILL at once. A new server on the same database replays each
run; each run must show exactly the state its journal implies, the journal must be a prefix of
what the person sent that holds every acknowledged action (0 lost, 0 reordered, 0 invented),
and each person then finishes and their collected result matches what they did.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.faults.harness import (
    THREE_STAGES,
    TIMEOUT,
    act,
    click_next,
    has_slider,
    journal,
    restart,
    shows,
    slider,
    stage_started_counts,
    write_app,
)
from tests.support.errors import ClientError
from tests.support.eventually import eventually
from tests.support.person import Person
from tests.support.processes import kill_hard, start_server
from tests.support.session import PageSession

PEOPLE = 5
ACKED_BEFORE_KILL = 30  # acknowledged actions, all people together, before the kill
ARGS = ("--pool-size", "2")


@dataclass
class Actor:
    """One person's script and what the server acknowledged of it."""

    person: Person
    rng: random.Random
    run_id: str = ""
    sent: list[tuple[str, Any]] = field(default_factory=list)  # ("number"|"offset"|"next", v)
    acked: int = 0  # how many of `sent` the kernel acknowledged (status idle)


async def play(actor: Actor, page: PageSession, acked_total: list[int]) -> None:
    """Move sliders and click Next until the server dies (or the script ends)."""
    try:
        for step in range(40):
            at_offset = any(kind == "next" for kind, _ in actor.sent)
            if step == 6 and not at_offset:
                actor.sent.append(("next", None))
                await click_next(page)
                await page.wait_for(has_slider("offset"), TIMEOUT)
            else:
                name = "offset" if at_offset else "number"
                value = actor.rng.randrange(1, 1000)
                actor.sent.append((name, value))
                await act(page, await page.set_value(slider(page, name), value))
            actor.acked = len(actor.sent)
            acked_total[0] += 1
    except ClientError:
        return  # the server went away mid-action


def implied(entries: list[tuple[str, Any]]) -> dict[str, Any]:
    """The state a run must have after these actions: slider values, whether Next passed."""
    state: dict[str, Any] = {"number": 5, "offset": 0, "next": False}
    for kind, value in entries:
        if kind == "next":
            state["next"] = True
        else:
            state[kind] = value
    return state


def journal_actions(app_dir: Path, run_id: str) -> list[tuple[str, Any]]:
    """The run's journaled widget messages as the actions they were (by widget ordinal)."""
    events = journal(app_dir, run_id, ("comm_msg",))
    ordinals: dict[int, str] = {}
    actions: list[tuple[str, Any]] = []
    for event in events:
        payload = event["payload"]
        if payload.get("method") == "custom":
            actions.append(("next", None))
            continue
        if event["ordinal"] not in ordinals:
            # the first slider updated is number; after a Next the new ordinal is offset
            ordinals[event["ordinal"]] = "offset" if ("next", None) in actions else "number"
        actions.append((ordinals[event["ordinal"]], payload["state"]["value"]))
    return actions


async def begin(actor: Actor) -> PageSession:
    """Start the person's run and wait for its first stage."""
    page = await actor.person.open("new")
    await page.wait_for(has_slider("number"), TIMEOUT)
    actor.run_id = page.page.url.rsplit("/", 1)[-1]
    return page


async def finish(app_dir: Path, actor: Actor) -> int:
    """Reopen the person's run after the restart, check it, finish it; return actions lost."""
    saved = journal_actions(app_dir, actor.run_id)
    # a prefix of what was sent, holding at least every acknowledged action
    assert saved == actor.sent[: len(saved)], (saved, actor.sent)
    state = implied(saved)

    page = await actor.person.open(f"run/{actor.run_id}")
    await page.wait_for(has_slider("number"), TIMEOUT, "the replayed number slider")
    assert page.value(slider(page, "number")) == state["number"]
    if state["next"]:
        await page.wait_for(has_slider("offset"), TIMEOUT, "the replayed offset")
        assert page.value(slider(page, "offset")) == state["offset"]
        assert shows(f"number is {state['number']}")(page)
    else:
        assert not has_slider("offset")(page)
        await click_next(page)
        await page.wait_for(has_slider("offset"), TIMEOUT)
    await act(page, await page.set_value(slider(page, "offset"), 7))
    await click_next(page)
    total = state["number"] + 7
    await page.wait_for(shows(f"total={total}"), TIMEOUT, f"total={total}")
    await page.close()
    await eventually(
        lambda: [e["payload"].get("value")
                 for e in journal(app_dir, actor.run_id, ("collected",))] == [total],
        "the collected total",
    )
    # each stage started at most once per kernel (the first one, and the replaying one)
    assert all(n <= 2 for n in stage_started_counts(app_dir, actor.run_id).values())
    return max(0, actor.acked - len(saved))


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_app(tmp_path_factory.mktemp("killed") / "app", THREE_STAGES,
                     collect={2: ("total",)})


async def test_sigkill_mid_stage_loses_no_acknowledged_action(app_dir: Path) -> None:
    server = await asyncio.to_thread(start_server, app_dir, *ARGS)
    restarted = None
    actors = [Actor(Person(server.base_url), random.Random(i)) for i in range(PEOPLE)]
    try:
        pages = await asyncio.gather(*(begin(actor) for actor in actors))
        acked_total = [0]
        players = [asyncio.create_task(play(a, p, acked_total))
                   for a, p in zip(actors, pages, strict=True)]
        await eventually(lambda: acked_total[0] >= ACKED_BEFORE_KILL, "acknowledged actions")
        kill_hard(server)
        await asyncio.wait_for(asyncio.gather(*players), TIMEOUT)
        for actor in actors:
            for page in list(actor.person.sessions):
                await page.close()

        restarted = await restart(server, app_dir, *ARGS)
        saved = sum(len(journal_actions(app_dir, a.run_id)) for a in actors)
        lost = await asyncio.gather(*(finish(app_dir, actor) for actor in actors))
        print(f"people={PEOPLE} sent={sum(len(a.sent) for a in actors)} "
              f"acknowledged={sum(a.acked for a in actors)} journaled={saved} "
              f"lost={sum(lost)}")
        assert sum(lost) == 0
        assert sum(a.acked for a in actors) >= ACKED_BEFORE_KILL
    finally:
        for actor in actors:
            await actor.person.close()
        server.stop()
        if restarted is not None:
            restarted.stop()

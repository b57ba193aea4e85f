"""``OPENS_STREAM`` claims each of its types is accepted only by an empty stream; the service presumes such an
event's stream new instead of reading it (ADR 0046). A wrong claim would cost refused appends, never a wrong
answer, but it is checked here on every stream state the events page's example story reaches."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from domain.catalog import parse_event, to_current
from domain.envelope import Envelope
from domain.rules import (
    OPENS_STREAM,
    CaseState,
    OnceState,
    OrderState,
    PaymentState,
    ReconExceptionState,
    RuleViolation,
    State,
    WalletState,
    evolve,
    initial_state,
    stream_name,
)


def _story_script() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "scripts" / "gen_events_doc.py"
    spec = importlib.util.spec_from_file_location("gen_events_doc", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _kind(name: str) -> str:
    return name.split(":", 1)[0]


def test_each_opening_type_is_refused_on_every_state_the_story_reaches() -> None:
    events: list[Envelope] = [to_current(parse_event(e)) for e in _story_script().story()]
    states: dict[str, State] = {}
    for e in events:
        name = stream_name(e)
        states[name] = evolve(states.get(name) or initial_state(name), e)
    tried: set[type[Envelope]] = set()
    for e in events:
        if type(e) not in OPENS_STREAM:
            continue
        kind = _kind(stream_name(e))
        for name, state in states.items():
            if _kind(name) == kind:
                tried.add(type(e))
                with pytest.raises(RuleViolation):
                    evolve(state, e)
    # Every claimed type was tried against at least one non-empty stream of its kind.
    assert tried == OPENS_STREAM


def test_each_opening_type_opens_its_stream_in_the_story() -> None:
    seen: set[str] = set()
    for e in (to_current(parse_event(doc)) for doc in _story_script().story()):
        name = stream_name(e)
        if type(e) in OPENS_STREAM:
            assert name not in seen, f"{e.type} is not the first event of {name}"
        seen.add(name)


@pytest.mark.parametrize(
    ("name", "cls"),
    [("order:O1", OrderState), ("payment:p1", PaymentState), ("wallet:S1", WalletState), ("amlcase:C1", CaseState),
     ("reconexc:E1", ReconExceptionState), ("fee:f1", OnceState), ("adjustment:a1", OnceState)],
)  # fmt: skip
def test_a_new_stream_starts_from_its_kinds_empty_state_which_nothing_can_change(name: str, cls: type) -> None:
    state = initial_state(name)
    assert state == cls()
    # One empty state is shared by every new stream of its kind: it must be frozen.
    with pytest.raises(dataclasses.FrozenInstanceError):
        object.__getattribute__(state, "__setattr__")(dataclasses.fields(state)[0].name, None)

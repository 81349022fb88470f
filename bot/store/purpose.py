"""What a store is for: a live bot's history, a rehearsal's, or one simulation's — never two of them.

The first process that writes a store's history marks it (flag `store:mode`, with an audit record):

- `live` (`marginbot run`): refuses a store that holds a simulation or a rehearsal;
- `rehearsal` (`marginbot rehearse`): refuses a store that holds a live history;
- `simulation` (`marginbot simulate`, the bench's replays): writes only into an empty store, and its
  notifications are written `simulated`, a status no outbox delivers.

A store written before marks existed counts as live as soon as it holds an audit record. So a simulation can
never append its records, balances or notifications to a live history, and a live bot never delivers what a
simulation wrote.
"""

from __future__ import annotations

import json
import time
from typing import Literal

from bot.errors import StoreMissing
from bot.store.repo import Store

MODE_FLAG = "store:mode"
SIMULATED = "simulated"  # the notification status of a simulation: never due, never delivered
Mode = Literal["live", "rehearsal", "simulation"]


def mode_of(store: Store) -> tuple[str | None, dict[str, str]]:
    """The store's mode (None when unmarked) and what was recorded with it (e.g. the scenario's name)."""
    raw = store.flags.get(MODE_FLAG)
    if raw is None:
        return None, {}
    data = json.loads(raw)
    return str(data.get("mode")), {k: str(v) for k, v in data.items()}


def _history(store: Store) -> str | None:
    """What an unmarked store already holds, in words; None when it is empty."""
    records = store.audit.count()
    n_intents = store.intents.count()
    if not records and not n_intents:
        return None
    return f"a history of {records} audit records and {n_intents} transfer intents"


def _describe(mode: str, meta: dict[str, str]) -> str:
    if mode == "simulation":
        return f"a simulation (scenario {meta.get('scenario', '?')!r})"
    return "a rehearsal against fake exchanges" if mode == "rehearsal" else "a live bot's history"


def claim(
    store: Store,
    mode: Mode,
    *,
    label: str,
    where: str,
    scenario: str | None = None,
    ts: float | None = None,
) -> None:
    """Mark the store for `mode`, or refuse (StoreMissing, exit 2) when it holds another kind of history.

    `ts` stamps the mark's audit record (a simulation's clock starts at its scenario's start).
    """
    current, meta = mode_of(store)
    if mode == "simulation":
        held = _describe(current, meta) if current is not None else _history(store)
        if held is not None:
            raise StoreMissing(
                f"{label}: {where} already holds {held}; a simulation writes only into a new, empty store "
                "(leave --db out for a fresh temporary one, or name a new file)"
            )
        store.note_status = SIMULATED
    elif current is not None and current != mode and (mode == "live" or current == "live"):
        raise StoreMissing(
            f"{label}: {where} holds {_describe(current, meta)}; "
            + (
                "a live bot never runs on it, nor delivers what it recorded: point it at the live store"
                if mode == "live"
                else "a rehearsal never writes into it: leave --db out for a fresh temporary one"
            )
        )
    elif current is None and mode == "rehearsal" and _history(store) is not None:
        raise StoreMissing(
            f"{label}: {where} holds a live bot's history; a rehearsal never writes into it "
            "(leave --db out for a fresh temporary one)"
        )
    if current is None:
        data = {"mode": mode} | ({"scenario": scenario} if scenario else {})
        store.flags.set(
            MODE_FLAG,
            json.dumps(data),
            time.time() if ts is None else ts,
            events=[("store.claimed", None, dict(data))],
        )
    elif current == "simulation":
        store.note_status = SIMULATED

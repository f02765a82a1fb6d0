"""The meter guard (``workers/kinds/melody/guard.py``): which tokens a row may write next,
on hand-made prompts (no model)."""

from __future__ import annotations

import numpy as np

from atelier.workers.kinds.melody.guard import MeterGuard

TOKENS = (
    "<pad>",
    "<tune>",
    "</tune>",
    "M:3/4",
    "L:1/8",
    "K:D",
    "|",
    "A",
    "2",
    "/2",
    "4",
    "(3",
    ">",
)
HEADER = ["<tune>", "M:3/4", "L:1/8", "K:D"]


def allowed(body: list[str]) -> set[str]:
    ids = [TOKENS.index(t) for t in [*HEADER, *body]]
    prompt = np.zeros((1, 80), np.int32)
    prompt[0, : len(ids)] = ids
    mask = np.asarray(MeterGuard(TOKENS).allowed(prompt, np.int32(len(ids))))[0]
    return {token for token, ok in zip(TOKENS, mask, strict=True) if ok}


def test_a_bar_line_only_where_the_bar_is_full_and_no_note_overflows_it() -> None:
    assert allowed(["A"]) >= {"|", "2", "4", "/2", "A"}  # the first bar: a pickup
    assert "|" not in allowed(["|", "A", "2", "A", "2"])  # 4 eighths of 6
    assert "4" not in allowed(["|", "A", "4", "A"])  # 4 + 1 + 3 more would overflow
    assert "2" in allowed(["|", "A", "4", "A"])
    assert allowed(["|", "A", "2", "A", "2", "A"]) >= {"2", "/2"}
    full = allowed(["|", "A", "2", "A", "2", "A", "2"])
    assert "|" in full and "A" not in full and "(3" not in full
    assert not allowed(["|", "A"]) & {"<pad>", "<tune>", "M:3/4", "K:D"}
    assert "</tune>" not in allowed(["|", "A"])  # not before 8 bars and a pickup
    assert "</tune>" in allowed(["|", "A", "4", "(3", "A", "A", "A"] * 8 + ["|"])


def test_a_tuplet_counts_its_time() -> None:
    assert "|" in allowed(["|", "A", "4", "(3", "A", "A", "A"])
    assert "(3" not in allowed(["|", "A", "4", "A"])


def test_broken_rhythm_pairs_two_notes_within_a_bar() -> None:
    assert ">" in allowed(["|", "A", "2", "A"])
    assert ">" not in allowed(["|", "A", "2", "A", "2", "A", "2"])  # no room for the pair
    assert ">" not in allowed(["|", ">"]) and ">" not in allowed(["|"])
    assert allowed(["|", "A", ">"]) == {"A"}

"""Ids: sessions and runs get canonical, random version-4 UUIDs (people shorten them to a
prefix); events get time-ordered version-7 UUIDs, so the log's event_id index grows at its end."""

from __future__ import annotations

import uuid

from bassi import events as ev


def test_new_id_is_a_canonical_random_uuid4() -> None:
    ids = [ev.new_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    variants = set()
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text  # canonical: lower case, 8-4-4-4-12
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
        variants.add(text[19])
    assert variants == set("89ab")  # the variant digit's two free bits are random too


def test_event_ids_are_canonical_uuid7_in_the_order_events_were_made() -> None:
    made = [
        ev.TokenDelta(session_id="s", run_id="r", message_id="m", index=0, channel="text", text="x")
        for _ in range(10_000)
    ]
    ids = [event.event_id for event in made]
    assert len(set(ids)) == len(ids)
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122
    assert ids == sorted(ids)  # made one after another, they sort as they were made

"""Event ids: what `new_id` hands out is a canonical, random version-4 UUID."""

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

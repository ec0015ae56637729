"""Damaged copies of a genuine envelope, for testing receivers (the test suite and
``python -m benchmarks node``): every one must be refused."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator

KINDS = ("flip", "truncate", "field", "recipient", "replay", "oversize", "extend")


def mutations(
    rng: random.Random,
    good: bytes,
    *,
    misaddressed: Callable[[], bytes],
    oversized: Callable[[int], bytes],
) -> Iterator[tuple[str, bytes]]:
    """Yield (kind, wire bytes) forever.  ``good`` must already have been accepted once (so
    that a verbatim copy is a replay); ``misaddressed()`` gives a genuine envelope for
    another node, ``oversized(extra)`` one whose payload is ``extra`` bytes over the limit."""
    doc = json.loads(good)
    while True:
        kind = rng.choice(KINDS)
        if kind == "flip":
            data = bytearray(good)
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
            if bytes(data) != good:
                yield kind, bytes(data)
        elif kind == "truncate":
            yield kind, good[: rng.randrange(len(good))]
        elif kind == "extend":
            yield kind, good + bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif kind == "field":
            mutated = dict(doc)
            key = rng.choice([k for k in doc if k != "v"])
            value = mutated[key]
            if isinstance(value, int):
                mutated[key] = rng.choice([value + 1, -1, 2**256, "1", None])
            else:
                chars = list(value)
                chars[rng.randrange(len(chars))] = rng.choice("0123456789abcdefABCDEF+/=x ")
                mutated[key] = "".join(chars)
                if mutated[key] == value:
                    mutated[key] = value[:-1]
            yield kind, json.dumps(mutated).encode()
        elif kind == "recipient":
            yield kind, misaddressed()
        elif kind == "replay":
            yield kind, good
        else:
            yield kind, oversized(rng.randint(1, 9000))

"""Hosts on separate network namespaces: skipped, with the reason, where none can be made."""

from __future__ import annotations

import pytest

from chainml.devtools.hosts import unavailable

REASON = unavailable()


@pytest.fixture(autouse=True)
def _needs_namespaces() -> None:
    if REASON:
        pytest.skip(f"parties on separate hosts need network namespaces: {REASON}")

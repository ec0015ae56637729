"""The roles a node can take, each one module offering ``plug(context) -> Plugged | None``
(``chainml.node.plugin``): its workers, its API routes, its message handlers by purpose.

``PLUGINS`` is the list the daemon walks; a role not listed here does not exist for it.
To add a role, write its module and add its ``plug`` below (and its ``routes`` to
``ROUTES`` if it serves any, so that the published schema lists them).
"""

from __future__ import annotations

from chainml.node.api import Routes
from chainml.node.plugin import Plugin
from chainml.node.roles import aggregator, guardian, jobs, keeper, provider, trainer, validator

PLUGINS: tuple[Plugin, ...] = (
    jobs.plug,
    guardian.plug,
    trainer.plug,
    aggregator.plug,
    provider.plug,
    validator.plug,
    keeper.plug,
)

# every route any role serves, with no role behind it: the published OpenAPI document
ROUTES: tuple[Routes, ...] = (guardian.routes(None), provider.routes(None))

__all__ = ["PLUGINS", "ROUTES"]

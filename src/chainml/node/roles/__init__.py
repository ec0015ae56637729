"""The roles a node can take, each one module offering ``plug(context) -> Plugged | None``
(``chainml.node.plugin``): its workers, its API routes, its message handlers by purpose.

``PLUGINS`` is the list the daemon walks; a role not listed here does not exist for it.
To add a role, write its module and add its ``plug`` below (and its ``routes`` to
``ROUTES`` if it serves any, so that the published schema lists them, and its ``SETTINGS``
to ``SECTIONS`` if it reads node.toml).

``SECTIONS`` are the roles' declarations of what they read from node.toml: ``load_config``
reads a node.toml with them (a table or key no role and not the node itself declares is
refused by name), and ``init`` writes each one's template.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chainml.crypto import Identity
from chainml.node import core, keystore
from chainml.node.api import Routes
from chainml.node.core import NodeConfig, Section
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

# what the roles read from node.toml, each one declared by its module
SECTIONS: tuple[Section[Any], ...] = (trainer.SETTINGS, aggregator.SETTINGS, provider.SETTINGS)


def load_config(path: Path) -> NodeConfig:
    """``path`` read as a node with these roles reads it (``core.NodeConfig.load``)."""
    return NodeConfig.load(path, SECTIONS)


def init(
    directory: Path,
    name: str,
    password: str,
    *,
    rpc: str,
    deployment: str,
    port: int,
    work: int = keystore.SCRYPT_N,
    identity: Identity | None = None,
) -> Identity:
    """A party's keystore and its node.toml with every role's table (``core.init``)."""
    return core.init(
        directory,
        name,
        password,
        rpc=rpc,
        deployment=deployment,
        port=port,
        work=work,
        identity=identity,
        sections=SECTIONS,
    )


__all__ = ["PLUGINS", "ROUTES", "SECTIONS", "init", "load_config"]

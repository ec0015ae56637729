"""One SecAgg+ round in one process (tests, benchmarks): ``run_in_memory``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from chainml.training.secagg.client import SecAggClient
from chainml.training.secagg.params import RoundParams, Stage
from chainml.training.secagg.server import SecAggResult, SecAggServer

# -- one round in one process (tests, benchmarks) --------------------------------------------


def run_in_memory(
    params: RoundParams,
    clients: Mapping[int, SecAggClient],
    *,
    drop: Mapping[str, Iterable[int]] | None = None,
    server: SecAggServer | None = None,
) -> SecAggResult:
    """Run a round, dropping the named clients at the named stage ("keys", "shares",
    "masked", "consistency", "unmask"): from then on their messages are lost."""
    drop = {k: set(v) for k, v in (drop or {}).items()}
    gone: set[int] = set()
    server = server or SecAggServer(params)

    def alive(stage: Stage) -> list[int]:
        gone.update(drop.get(stage, ()))
        return [i for i in sorted(clients) if i not in gone]

    for i in alive(Stage.KEYS):
        server.receive(clients[i].advertise())
    stages = [Stage.SHARES, Stage.MASKED, Stage.CONSISTENCY, Stage.UNMASK]
    for stage in stages:
        outgoing = server.advance()
        ids = set(alive(stage))
        for message in outgoing:
            if message.recipient in ids:
                server.receive(clients[message.recipient].handle(message))
    return server.finish()

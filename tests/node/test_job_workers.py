"""The job workers read a joined job again only when an event can change what they do with
it: another trainer joining or a round that is not the job's last changes nothing, the last
round has them wait for the challenge window, then finalise and claim."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chainml.crypto import Identity
from chainml.ledger.bindings import Chainml, JobParams, JobState, Role
from chainml.ledger.client import LedgerClient
from chainml.ledger.deploy import Deployment
from chainml.ledger.devchain import DevChainProcess
from chainml.node import localnet
from chainml.node.state import NodeState
from chainml.node.workers import JobWorkers

ETHER = 10**18
WINDOW = 60


def test_a_joined_job_is_read_again_only_when_an_event_can_change_the_decision(tmp_path: Path):
    with DevChainProcess(tmp_path / "chain") as chain:
        client = LedgerClient(chain.url, timeout=20)
        cm, dev = localnet.deploy(client, tmp_path)
        trainer, other, aggregator = (Identity.generate() for _ in range(3))
        roles = (Role.TRAINER, Role.TRAINER, Role.AGGREGATOR)
        for ident, role in zip((trainer, other, aggregator), roles, strict=True):
            client.transact(dev, to=ident.address, value=3 * ETHER)
            cm.registry.register_identity(ident, role, "x", ETHER)
        state = NodeState(tmp_path / "state.db")
        node_cm = Chainml.connect(
            LedgerClient(chain.url, timeout=20), Deployment.load(tmp_path / "deployment.json")
        )
        workers = JobWorkers(node_cm, trainer, state, roles=Role.TRAINER)
        reads: list[int] = []
        job_of = node_cm.jobs.job

        def counted(job_id: int, **kwargs: Any) -> Any:
            reads.append(job_id)
            return job_of(job_id, **kwargs)

        node_cm.jobs.job = counted  # type: ignore[method-assign]
        try:
            job_id = cm.jobs.create_job(
                dev, JobParams(aggregator.address, 2, 1, 4, ETHER, WINDOW), ETHER
            )
            workers.tick()
            assert state.get(f"job:{job_id}") == "joined"
            workers.tick()  # its Joined event: the job is read once, then left alone
            cm.jobs.join(other.account, job_id)  # another trainer joins
            before = len(reads)
            workers.tick()
            assert len(reads) == before

            me = int(cm.jobs.functions.participant_of(job_id, trainer.address))
            cm.jobs.submit_round(
                aggregator.account, job_id, 1, "bafkreione", b"\1" * 32, 1 << (me - 1)
            )
            workers.tick()
            assert len(reads) == before  # round 1 of 2: nothing to finalise yet

            cm.jobs.submit_round(
                aggregator.account, job_id, 2, "bafkreitwo", b"\2" * 32, 1 << (me - 1)
            )
            workers.tick()
            assert reads[before:] == [job_id]  # the last round: read, the window still open
            assert cm.jobs.job(job_id).state == JobState.OPEN
            client.increase_time(WINDOW + 1)
            client.rpc("evm_mine")
            workers.tick()
            assert cm.jobs.job(job_id).state == JobState.FINALIZED
            assert bool(cm.jobs.functions.claimed(job_id, trainer.address))
            assert state.get(f"job:{job_id}") == "claimed"
        finally:
            state.close()
            client.close()

"""Validator nodes, each its own process (``chainml node run`` with the validator role),
against an aggregator that lies and a challenger that lies, on a dev chain:

- a round whose published sum is one unit off is challenged by one validator node, the
  others (drawn onto the committee) re-check it and vote it down, and the challenge is
  settled: the aggregator loses its job's ``min_stake`` (half to the challenging node), the
  round is marked invalid and the job cancelled, the requester's escrow back — to the wei;
- a false challenge of an honest round is voted down by the validator nodes and costs the
  challenger ``min_stake // 10`` (half to the aggregator); the round stands;
- a trainer that signed two commitments for one round, handed to a validator node in a
  signed envelope (``validator/evidence``), is slashed its job's ``min_stake`` on the
  node's report (half to the node);
- the nodes count what they did (``chainml_validator_actions``) and raise a
  ``round_invalid`` alert for the bad round (``GET /v1/alerts``, the dashboard).

The lying aggregator and the lying challenger are this test, acting on chain directly; the
rounds themselves are real SecAgg+ rounds (``chainml.devtools.chainround``)."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import requests

from chainml.crypto import keccak256, sign_round_commitment
from chainml.devtools.chainround import ETHER, ChainWorld, one_unit_off
from chainml.ledger.anvil import stop_process
from chainml.ledger.bindings import Role
from chainml.ledger.client import LedgerClient
from chainml.ledger.devchain import DevChainProcess
from chainml.ledger.enums import ChallengeStatus, JobState, RoundStatus
from chainml.node import localnet
from chainml.node.rounds import Courier
from chainml.node.validator import EVIDENCE, encode_evidence
from chainml.storage.local import LocalBlobStore
from chainml.training.job import JobConfig
from tests.node.test_rounds import PASSWORD, _start, _wait

CONFIG = JobConfig(n_features=8, n_classes=3, hidden=(4,), epochs=1, verifiable=False)
CLIP = 5.0
VALIDATORS = 3


def _validators(tmp: Path, url: str, world: ChainWorld, store: Path) -> list[localnet.NodeDir]:
    nodes = []
    for k in range(VALIDATORS):
        node = localnet.init_node(tmp, f"validator-{k}", PASSWORD, rpc=url, work=1 << 10)
        text = node.config.read_text().replace("interval = 1 ", "interval = 0.2 ")
        node.config.write_text(text.replace('dir = "store"', f'dir = "{store}"'))
        world.client.transact(world.dev, to=node.identity.address, value=5 * ETHER)
        world.cm.registry.register_identity(node.identity, Role.VALIDATOR, node.url, 2 * ETHER)
        nodes.append(node)
    return nodes


def test_validator_nodes_challenge_a_false_sum_and_refuse_a_false_challenge(tmp_path: Path):
    with DevChainProcess(tmp_path / "chain") as chain, ExitStack() as running:
        cm, _dev = localnet.deploy(LedgerClient(chain.url), tmp_path)
        store = LocalBlobStore(tmp_path / "store")
        w = ChainWorld(chain.url, store, trainers=5, deployed=cm)
        nodes = _validators(tmp_path, chain.url, w, store.root)
        for node in nodes:
            running.callback(stop_process, _start(node), 20)
        by_address = {n.identity.address: n for n in nodes}
        jobs = cm.jobs

        # an aggregator that adds one to the sum it publishes
        escrow = 2 * ETHER + 3
        bad = w.job(CONFIG, CLIP, escrow=escrow)
        stake = cm.registry.stake_of(w.aggregator.address)
        pool = cm.registry.functions.slashed_pool()
        w.round(bad, CONFIG, CLIP, tamper=one_unit_off)
        _wait(lambda: jobs.functions.challenge_count() == 1)
        info = jobs.challenge_info(1)
        assert (info.job_id, info.round) == (bad, 1) and info.challenger in by_address
        _wait(lambda: jobs.challenge_info(1).status != ChallengeStatus.OPEN)
        assert jobs.challenge_info(1).status == ChallengeStatus.UPHELD
        assert jobs.round(bad, 1).status == RoundStatus.INVALID
        assert jobs.job(bad).state == JobState.CANCELLED
        assert cm.registry.stake_of(w.aggregator.address) == stake - ETHER
        assert cm.registry.functions.rewards_owed(info.challenger) == ETHER // 2
        assert cm.registry.functions.slashed_pool() == pool + ETHER - ETHER // 2
        assert jobs.refund(w.dev, bad) == escrow

        # an honest round, and a challenger that calls it false anyway
        good = w.job(CONFIG, CLIP)
        w.round(good, CONFIG, CLIP)
        liar = w.trainer_ids[0]  # staked and registered: it may challenge, it is not drawn
        liar_stake = cm.registry.stake_of(liar.address)
        owed = cm.registry.functions.rewards_owed(w.aggregator.address)
        challenge = jobs.challenge(liar.account, good, 1, keccak256(b"it is wrong, trust me"))
        _wait(lambda: jobs.challenge_info(challenge).status != ChallengeStatus.OPEN)
        assert jobs.challenge_info(challenge).status == ChallengeStatus.REJECTED
        assert jobs.round(good, 1).status == RoundStatus.RECORDED
        assert cm.registry.stake_of(liar.address) == liar_stake - ETHER // 10
        assert cm.registry.functions.rewards_owed(w.aggregator.address) == owed + ETHER // 20

        # a trainer that signed two commitments for one round, handed to a validator node
        # in an envelope by a party that saw both: slashed on the node's report
        cheat, reporter = w.trainer_ids[1], nodes[2]
        chain_id = cm.jobs.client.chain_id
        pairs = [
            (c, sign_round_commitment(cheat.account, chain_id, jobs.address, good, 1, c))
            for c in (keccak256(b"one update"), keccak256(b"another update"))
        ]
        cheat_stake = cm.registry.stake_of(cheat.address)
        owed = cm.registry.functions.rewards_owed(reporter.identity.address)
        evidence = encode_evidence(good, 1, cheat.address, pairs[0], pairs[1])
        Courier(w.aggregator, cm).send(reporter.identity.address, EVIDENCE, evidence, good, 1)
        _wait(lambda: cm.registry.stake_of(cheat.address) < cheat_stake)
        assert cm.registry.stake_of(cheat.address) == cheat_stake - ETHER
        assert cm.registry.functions.rewards_owed(reporter.identity.address) == owed + ETHER // 2

        # what the nodes say of it
        challenger = by_address[info.challenger]
        metrics = requests.get(challenger.url + "/metrics", timeout=5).text
        assert 'chainml_validator_actions_total{kind="challenge"} 1.0' in metrics
        assert 'chainml_validator_actions_total{kind="invalid"} 1.0' in metrics
        alerts = requests.get(challenger.url + "/v1/alerts", timeout=5).json()
        assert [a["subject"] for a in alerts if a["kind"] == "round_invalid"] == [
            f"job {bad} round 1"
        ]
        # the dashboard: both challenges with their outcome and stakes, and this node's
        # verdict on each round it audited
        page = requests.get(challenger.url + "/", timeout=10).text
        table = page[page.index('id="challenges"') :]
        table = table[: table.index("</table>")]
        assert table.count("<tr>") == 3 and "upheld" in table and "rejected" in table
        rounds = page[page.index('id="rounds"') :]
        rounds = rounds[: rounds.index("</table>")]
        assert "invalid" in rounds and "the published sum is not" in rounds and ">ok<" in rounds
        votes = 0.0
        for node in nodes:
            text = requests.get(node.url + "/metrics", timeout=5).text
            votes += sum(
                float(line.split()[-1])
                for line in text.splitlines()
                if line.startswith('chainml_validator_actions_total{kind="vote"}')
            )
        assert votes >= 4  # both others upheld the bad round; two of three refused the false one

"""Validators on a real chain (a dev chain in its own process): each audits every recorded
round with ``audit_round``, challenges one that fails, votes when drawn, and settles.

- an aggregator that publishes a sum one unit off is challenged, voted down by the drawn
  committee, slashed its job's ``min_stake`` (half to the challenger, half burnt), its round
  marked invalid and the job cancelled, the escrow back with the requester — to the wei;
- a false challenge of an honest round costs the challenger ``min_stake // 10`` (half to
  the aggregator), and the round stands;
- a trainer that signed two commitments for one round is slashed on a validator's report;
- a restarted validator neither challenges nor votes again; a signature that is not the
  trainer's is no evidence."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from chainml.crypto import Identity, keccak256, sign_round_commitment
from chainml.crypto.keys import AccountKey
from chainml.devtools.chainround import ETHER, ChainWorld, one_unit_off
from chainml.ledger.devchain import DevChainProcess
from chainml.ledger.enums import ChallengeStatus, JobState, RoundStatus
from chainml.node.state import NodeState
from chainml.node.validator import Action, BadEvidence, ValidatorRole, encode_evidence
from chainml.storage.local import LocalBlobStore
from chainml.training.job import JobConfig

CONFIG = JobConfig(n_features=8, n_classes=3, hidden=(4,), epochs=1, verifiable=False)
CLIP = 5.0


@dataclass
class World:
    """One chain for the module; each test's validators are new, watch only its job and
    keep their state in the test's own directory."""

    chain: ChainWorld
    path: Path
    job_id: int = 0
    validators: list[ValidatorRole] = field(default_factory=list)

    def job(self, **kw: int) -> int:
        self.job_id = self.chain.job(CONFIG, CLIP, **kw)
        self.validators = [self.role(k) for k in range(4)]
        return self.job_id

    def role(self, k: int) -> ValidatorRole:
        """Validator ``k`` as a fresh process would build it over its state file."""
        return ValidatorRole(
            self.chain.validator_ids[k],
            self.chain.cm,
            self.chain.store,
            NodeState(self.path / f"validator-{k}.db"),
            jobs={self.job_id},
        )

    def tick_all(self) -> list[Action]:
        return [a for v in self.validators for a in v.tick()]


@pytest.fixture(scope="module")
def chain_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChainWorld]:
    tmp = tmp_path_factory.mktemp("chain")
    with DevChainProcess(tmp / "chain") as chain:
        yield ChainWorld(chain.url, LocalBlobStore(tmp / "blobs"), trainers=5, validators=4)


@pytest.fixture
def world(chain_world: ChainWorld, tmp_path: Path) -> World:
    return World(chain_world, tmp_path)


def test_an_honest_round_is_validated_and_never_challenged(world: World) -> None:
    w = world.chain
    job_id = world.job()
    challenges = w.cm.jobs.functions.challenge_count()
    w.round(job_id, CONFIG, CLIP)
    actions = world.tick_all()
    assert [a.kind for a in actions] == ["valid"] * 4
    assert w.cm.jobs.functions.challenge_count() == challenges
    assert world.tick_all() == []  # nothing new on chain: nothing done


def test_a_sum_one_unit_off_is_challenged_voted_down_and_slashed(world: World) -> None:
    w = world.chain
    escrow = 3 * ETHER + 7
    job_id = world.job(escrow=escrow)
    w.round(job_id, CONFIG, CLIP, tamper=one_unit_off)
    aggregator_stake = w.cm.registry.stake_of(w.aggregator.address)
    pool = w.cm.registry.functions.slashed_pool()
    owed = w.cm.registry.functions.rewards_owed(w.validator_ids[0].address)
    first = world.validators[0].tick()
    assert [a.kind for a in first] == ["invalid", "challenge"]
    assert "sum" in first[0].detail  # the audit's own finding is the challenge's reason
    challenge_id = int(first[1].detail.split()[-1])
    info = w.cm.jobs.challenge_info(challenge_id)
    challenger = w.validator_ids[0].address
    assert info.challenger == challenger and len(info.committee) == 3
    assert challenger not in info.committee and w.aggregator.address not in info.committee
    actions = [a for v in world.validators[1:] for a in v.tick()]
    votes = [a.detail for a in actions if a.kind == "vote"]
    assert votes and set(votes) == {"uphold"}  # each re-checked the round itself
    # the others found it invalid too; the contract took one challenge a round (and none
    # once the upheld challenge had cancelled the job)
    refused = {a.detail for a in actions if a.kind == "not_challenged"}
    assert "ChallengePending" in refused and refused <= {"ChallengePending", "JobNotOpen"}
    assert not [a for a in actions if a.kind == "challenge"]
    actions += world.tick_all()
    assert [a.detail for a in actions if a.kind == "resolve"] == ["upheld"]
    assert w.cm.jobs.challenge_info(challenge_id).status == ChallengeStatus.UPHELD
    assert w.cm.jobs.round(job_id, 1).status == RoundStatus.INVALID
    assert w.cm.jobs.job(job_id).state == JobState.CANCELLED
    # to the wei: min_stake taken from the aggregator, half to the challenger, half burnt
    assert w.cm.registry.stake_of(w.aggregator.address) == aggregator_stake - ETHER
    assert w.cm.registry.functions.rewards_owed(challenger) == owed + ETHER // 2
    assert w.cm.registry.functions.slashed_pool() == pool + ETHER - ETHER // 2
    assert w.cm.jobs.refund(w.dev, job_id) == escrow
    # restarted over their state, the validators neither challenge nor vote again
    restarted = [world.role(k) for k in range(4)]
    again = [a for v in restarted for a in v.tick()]
    assert {a.kind for a in again} <= {"invalid"}
    assert w.cm.jobs.functions.challenge_count() == challenge_id


def test_a_false_challenge_costs_the_challenger_its_bond(world: World) -> None:
    w = world.chain
    job_id = world.job()
    w.round(job_id, CONFIG, CLIP)
    liar = w.validator_ids[3]  # a validator that challenges an honest round anyway
    liar_stake = w.cm.registry.stake_of(liar.address)
    owed = w.cm.registry.functions.rewards_owed(w.aggregator.address)
    challenge_id = w.cm.jobs.challenge(liar.account, job_id, 1, keccak256(b"no reason"))
    honest = world.validators[:3]
    actions = [a for v in honest for a in v.tick()]
    # two of three equal stakes decide: the second voter settles it, the third need not vote
    assert [a.detail for a in actions if a.kind == "vote"] == ["reject"] * 2
    assert [a.detail for a in actions if a.kind == "resolve"] == ["rejected"]
    assert w.cm.jobs.challenge_info(challenge_id).status == ChallengeStatus.REJECTED
    assert w.cm.jobs.round(job_id, 1).status == RoundStatus.RECORDED
    assert w.cm.registry.stake_of(liar.address) == liar_stake - ETHER // 10
    assert w.cm.registry.functions.rewards_owed(w.aggregator.address) == owed + ETHER // 20


def test_a_trainer_that_signs_twice_is_slashed_on_a_validator_s_report(world: World) -> None:
    w = world.chain
    job_id = world.job()
    w.round(job_id, CONFIG, CLIP)
    reporter = world.validators[0]
    assert [a.kind for a in reporter.tick()] == ["valid"]  # it saw each signed commitment
    cheat = w.trainer_ids[0]
    chain_id, jobs = w.client.chain_id, w.cm.jobs.address
    other = keccak256(b"a second update for the same round")
    forged = sign_round_commitment(w.trainer_ids[1].account, chain_id, jobs, job_id, 1, other)
    assert not reporter.observe(job_id, 1, cheat.address, other, forged)  # not its signature
    assert reporter.report_observed() == []
    signed = sign_round_commitment(cheat.account, chain_id, jobs, job_id, 1, other)
    assert reporter.observe(job_id, 1, cheat.address, other, signed)
    stake = w.cm.registry.stake_of(cheat.address)
    owed = w.cm.registry.functions.rewards_owed(w.validator_ids[0].address)
    actions = reporter.tick()  # no block since its last pass: the evidence alone is acted on
    assert [(a.kind, a.detail) for a in actions] == [("evidence", f"{cheat.address} {ETHER}")]
    assert w.cm.registry.stake_of(cheat.address) == stake - ETHER
    assert w.cm.registry.functions.rewards_owed(w.validator_ids[0].address) == owed + ETHER // 2
    assert reporter.report_observed() == []  # reported once


# -- the evidence message (docs/protocol/wire.md, "Double-signing evidence") -------------------

WIRE = Path(__file__).resolve().parents[2] / "docs" / "protocol" / "wire.md"
VECTOR_KEY = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
VECTOR_JOBS = "0xABaBaBaBABabABabAbAbABAbABabababaBaBABaB"


def _evidence_blocks() -> dict[str, bytes]:
    text = WIRE.read_text()
    pattern = r"<!-- evidence: ([\w-]+) -->\n```text\n(.*?)\n```"
    return {m.group(1): m.group(2).encode() for m in re.finditer(pattern, text, re.S)}


def test_the_evidence_vectors_in_the_spec_match_the_code(tmp_path: Path) -> None:
    """The spec's bytes are what encode_evidence writes for the stated values; a validator
    keeps them, and refuses the two variants the page refuses, keeping nothing."""
    signer = AccountKey.from_bytes(bytes.fromhex(VECTOR_KEY))
    a, b = b"\x11" * 32, b"\x22" * 32
    sa = sign_round_commitment(signer, 1337, VECTOR_JOBS, 7, 1, a)
    sb = sign_round_commitment(signer, 1337, VECTOR_JOBS, 7, 1, b)
    blocks = _evidence_blocks()
    assert encode_evidence(7, 1, signer.address, (a, sa), (b, sb)) == blocks["valid"]
    jobs = SimpleNamespace(address=VECTOR_JOBS, client=SimpleNamespace(chain_id=1337))
    cm: Any = SimpleNamespace(jobs=jobs)
    validator = ValidatorRole(
        Identity.generate(), cm, LocalBlobStore(tmp_path / "b"), NodeState(tmp_path / "s.db")
    )

    def envelope(raw: bytes, round_no: int) -> Any:
        return SimpleNamespace(header=SimpleNamespace(job_id=7, round=round_no), plaintext=raw)

    for name, round_no in (("wrong-round", 2), ("unsorted", 1)):
        with pytest.raises(BadEvidence):
            validator.on_evidence(envelope(blocks[name], round_no))
    with pytest.raises(BadEvidence):  # valid evidence in an envelope for another round
        validator.on_evidence(envelope(blocks["valid"], 2))
    assert validator._items("evidence:") == []
    validator.on_evidence(envelope(blocks["valid"], 1))
    assert [k for k, _ in validator._items("evidence:")] == [f"evidence:7:1:{signer.address}"]

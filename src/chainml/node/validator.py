"""The validator role: it audits every recorded round of the jobs it watches with the
documented checks (``audit_round``: what any auditor checks from the chain and the public
blobs), challenges on chain a round that fails while its window is open, re-checks and
votes when the contract draws it onto a challenge's committee, settles challenges whose
outcome is fixed, and reports a trainer that signed two commitments for one round.

What it checks before each transaction, and why that suffices:
- **challenge**: its own audit of the record the chain names refused it (a record that is
  missing or unreadable is refused too: an aggregator must publish what it commits to).
  A round it cannot fault is never challenged, so an honest validator loses no bond.
- **vote**: the same audit, run by itself, never the challenger's reason: it upholds
  exactly when the round fails. The contract counts its stake, not its word.
- **resolve**: nothing to check; the contract settles only a decided or expired
  challenge, and anyone may call it.
- **double signing**: both signatures recover to the trainer's account over the EIP-712
  ``RoundCommitment`` of the same job and round, on two different commitments; the
  contract checks the same before it slashes.

Every action is remembered in the node's state (``validate:``, ``challenge:``, ``vote:``,
``evidence:``), so a validator that restarts neither challenges nor votes twice.  Chain
and store are injected; ``tick`` is one pass and returns what it did (``on_action`` hears
each action too: the node counts them and raises an alert for each round found invalid).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass

from chainml.crypto import wire
from chainml.crypto.hashing import keccak256
from chainml.crypto.keys import Identity, recover_address
from chainml.crypto.signing import round_commitment_digest
from chainml.errors import ChainmlError
from chainml.ledger import errors as ledger_errors
from chainml.ledger.bindings import Chainml
from chainml.ledger.enums import ChallengeStatus
from chainml.node.envelope import Opened
from chainml.node.rounds import audit_round, roster_of
from chainml.node.state import NodeState
from chainml.storage.errors import StorageError
from chainml.storage.store import BlobStore
from chainml.training.secagg import AggregateMismatch, RoundTranscript

log = logging.getLogger("chainml.validator")


class BadEvidence(ChainmlError):
    """Evidence a validator refuses: not canonical, for another round than its envelope's,
    or a signature that is not the trainer's."""


# double-signing evidence any party hands a validator (an envelope's plaintext; its header's
# job and round must be the evidence's): docs/protocol/wire.md, "Double-signing evidence"
EVIDENCE = "validator/evidence"
EVIDENCE_SCHEMA = (  # sorted keys, the order encode_evidence writes
    ("commitment_a", wire.hex_bytes(32)),
    ("commitment_b", wire.hex_bytes(32)),
    ("job", wire.uint(256)),
    ("round", wire.uint(256)),
    ("signature_a", wire.hex_bytes(65)),
    ("signature_b", wire.hex_bytes(65)),
    ("trainer", wire.address),
)


def encode_evidence(
    job_id: int,
    round_no: int,
    trainer: str,
    a: tuple[bytes, bytes],
    b: tuple[bytes, bytes],
) -> bytes:
    """Two (commitment, signature) pairs by ``trainer`` for one round, canonically."""
    return wire.encode(
        [
            ("commitment_a", a[0].hex()),
            ("commitment_b", b[0].hex()),
            ("job", job_id),
            ("round", round_no),
            ("signature_a", a[1].hex()),
            ("signature_b", b[1].hex()),
            ("trainer", trainer),
        ]
    )


@dataclass(frozen=True)
class Action:
    """One thing the validator did on chain (or decided): for logs, metrics and tests."""

    kind: str  # "valid", "invalid", "challenge", "not_challenged", "vote", "resolve", "evidence"
    job_id: int
    round_no: int
    detail: str = ""


class ValidatorRole:
    """Audits, challenges, votes, resolves and reports, for the jobs in ``jobs`` (every
    job when ``None``)."""

    def __init__(
        self,
        identity: Identity,
        cm: Chainml,
        store: BlobStore,
        state: NodeState,
        *,
        jobs: Collection[int] | None = None,
        on_action: Callable[[Action], None] | None = None,
    ) -> None:
        self.identity = identity
        self.cm = cm
        self.store = store
        self.state = state
        self.jobs = None if jobs is None else set(jobs)
        self.on_action = on_action
        self._from_block = 0
        self._open: set[int] = set()  # challenges this validator waits to see settled
        # (job, round, trainer) -> (commitment, signature), from every transcript it read
        self._signed: dict[tuple[int, int, str], tuple[bytes, bytes]] = {}

    # -- one pass ---------------------------------------------------------------------

    def tick(self) -> list[Action]:
        head = self.cm.jobs.client.block_number()
        if head < self._from_block:  # no new block: only evidence handed in since
            return self._heard(self.report_observed())
        contract = self.cm.jobs.contract
        done: list[Action] = []
        for event in contract.past_events(
            "RoundRecorded", from_block=self._from_block, to_block=head
        ):
            job_id, round_no = int(event.args["job_id"]), int(event.args["round"])
            if self.jobs is None or job_id in self.jobs:
                done += self._validate(job_id, round_no, str(event.args["aggregate_cid"]))
        for event in contract.past_events(
            "ChallengeOpened", from_block=self._from_block, to_block=head
        ):
            challenge_id = int(event.args["challenge_id"])
            if self.identity.address in event.args["committee"]:
                done += self._vote(challenge_id)
            if str(event.args["challenger"]) == self.identity.address:
                self._open.add(challenge_id)
        done += self._resolve()
        done += self.report_observed()
        self._from_block = head + 1
        return self._heard(done)

    def _heard(self, done: list[Action]) -> list[Action]:
        for action in done:
            log.info(
                "%s job %d round %d %s", action.kind, action.job_id, action.round_no, action.detail
            )
            if self.on_action is not None:
                self.on_action(action)
        return done

    # -- audit and challenge ------------------------------------------------------------

    def audit(self, job_id: int, round_no: int, cid: str) -> str | None:
        """None when the round checks out, else why it does not (remembered per record)."""
        key = f"validate:{job_id}:{round_no}:{cid}"
        known = self.state.get(key)
        if known is not None:
            return None if known == "ok" else known
        try:
            audit_round(self.cm, self.store, job_id, round_no)
            verdict = None
        except AggregateMismatch as exc:
            verdict = str(exc) or "the round does not check out"
        self.state.put(key, verdict or "ok")
        if verdict is None:
            self._observe_transcript(job_id, round_no, cid)
        return verdict

    def _validate(self, job_id: int, round_no: int, cid: str) -> list[Action]:
        if self.cm.jobs.round(job_id, round_no).aggregate_cid != cid:
            return []  # a later attempt replaced this record: the newer event is checked
        verdict = self.audit(job_id, round_no, cid)
        if verdict is None:
            return [Action("valid", job_id, round_no)]
        actions = [Action("invalid", job_id, round_no, verdict)]
        key = f"challenge:{job_id}:{round_no}"
        if self.state.get(key) is not None:
            return actions
        reason = json.dumps(
            {"job": job_id, "round": round_no, "record": cid, "reason": verdict},
            sort_keys=True,
            separators=(",", ":"),
        ).encode()
        try:
            self.store.put(reason)  # the reason, public: its hash goes on chain
            receipt = self.cm.jobs.functions.challenge(
                self.identity.account, job_id, round_no, keccak256(reason)
            )
        except (
            ledger_errors.ChallengeWindowClosed,
            ledger_errors.ChallengePending,
            ledger_errors.InsufficientStake,
            ledger_errors.NotRegistered,
            ledger_errors.JobNotOpen,
        ) as exc:
            self.state.put(key, f"not challenged: {type(exc).__name__}")
            return [*actions, Action("not_challenged", job_id, round_no, type(exc).__name__)]
        challenge_id = self.cm.jobs.events.challenge_opened(receipt)[0].challenge_id
        self.state.put(key, str(challenge_id))
        self._open.add(challenge_id)
        return [*actions, Action("challenge", job_id, round_no, f"challenge {challenge_id}")]

    # -- the committee --------------------------------------------------------------------

    def _vote(self, challenge_id: int) -> list[Action]:
        key = f"vote:{challenge_id}"
        if self.state.get(key) is not None:
            return []
        c = self.cm.jobs.challenge_info(challenge_id)
        if c.status != ChallengeStatus.OPEN:
            return []
        cid = self.cm.jobs.round(c.job_id, c.round).aggregate_cid
        uphold = self.audit(c.job_id, c.round, cid) is not None
        try:
            self.cm.jobs.vote(self.identity.account, challenge_id, uphold)
        except (ledger_errors.AlreadyVoted, ledger_errors.AlreadyResolved) as exc:
            self.state.put(key, f"not voted: {type(exc).__name__}")
            return []
        self.state.put(key, "uphold" if uphold else "reject")
        self._open.add(challenge_id)
        return [Action("vote", c.job_id, c.round, "uphold" if uphold else "reject")]

    def _resolve(self) -> list[Action]:
        actions = []
        now = int(self.cm.jobs.client.block("latest")["timestamp"], 16)
        for challenge_id in sorted(self._open):
            c = self.cm.jobs.challenge_info(challenge_id)
            if c.status != ChallengeStatus.OPEN:
                self._open.discard(challenge_id)
                continue
            decided = c.uphold_stake * 2 > c.committee_stake
            decided = decided or c.reject_stake * 2 >= c.committee_stake
            if not decided and now < c.deadline:
                continue
            try:
                self.cm.jobs.resolve(self.identity.account, challenge_id)
            except ledger_errors.AlreadyResolved:
                pass  # another party settled it first
            self._open.discard(challenge_id)
            status = self.cm.jobs.challenge_info(challenge_id).status
            actions.append(Action("resolve", c.job_id, c.round, status.name.lower()))
        return actions

    # -- double signing ---------------------------------------------------------------------

    def _observe_transcript(self, job_id: int, round_no: int, cid: str) -> None:
        """Remember each counted trainer's signed commitment of a round that checked out."""
        try:
            record = json.loads(self.store.get(cid))
            if "transcript" not in record:
                return  # a robust round: its signatures are checked by the audit alone
            transcript = RoundTranscript.decode(self.store.get(record["transcript"]))
        except (StorageError, ValueError, KeyError, ChainmlError):
            return
        roster = roster_of(self.cm, job_id)
        for i in transcript.survivors:
            signed = transcript.inputs[i]
            self.observe(job_id, round_no, roster[i], signed.commitment, signed.signature)

    def observe(
        self, job_id: int, round_no: int, trainer: str, commitment: bytes, signature: bytes
    ) -> bool:
        """A trainer's signed commitment for a round, from a transcript or from anyone who
        hands one in; kept only if the signature is the trainer's. Returns whether it was."""
        digest = round_commitment_digest(
            self.cm.jobs.client.chain_id, self.cm.jobs.address, job_id, round_no, commitment
        )
        try:
            if recover_address(digest, signature) != trainer:
                return False
        except (ValueError, ChainmlError):
            return False
        key = (job_id, round_no, trainer)
        first = self._signed.setdefault(key, (commitment, signature))
        if first[0] != commitment:
            self.state.put(
                f"evidence:{job_id}:{round_no}:{trainer}",
                json.dumps([[c.hex(), s.hex()] for c, s in (first, (commitment, signature))]),
            )
        return True

    def _report_double_signs(self, job_id: int) -> list[Action]:
        actions = []
        for key, evidence in self._items(f"evidence:{job_id}:"):
            _, _, round_text, trainer = key.split(":", 3)
            if evidence.startswith("reported"):
                continue
            pairs = [(bytes.fromhex(c), bytes.fromhex(s)) for c, s in json.loads(evidence)]
            try:
                slashed = self.cm.jobs.report_double_sign(
                    self.identity.account, job_id, int(round_text), trainer, pairs
                )
            except (ledger_errors.EvidenceAlreadyUsed, ledger_errors.InvalidEvidence) as exc:
                self.state.put(key, f"reported: {type(exc).__name__}")
                continue
            self.state.put(key, f"reported: {slashed}")
            actions.append(Action("evidence", job_id, int(round_text), f"{trainer} {slashed}"))
        return actions

    def on_evidence(self, opened: Opened) -> None:
        """Double-signing evidence in an envelope: both signatures are checked here (a pair
        that is not the trainer's is dropped); the next pass reports it on chain."""
        try:
            d = wire.decode(opened.plaintext, EVIDENCE_SCHEMA)
        except wire.WireError as exc:
            raise BadEvidence(f"not double-signing evidence: {exc}") from None
        h = opened.header
        if (d["job"], d["round"]) != (h.job_id, h.round):
            raise BadEvidence("the evidence is for another round than its envelope's")
        for side in ("a", "b"):
            pair = (d[f"commitment_{side}"], d[f"signature_{side}"])
            if not self.observe(d["job"], d["round"], d["trainer"], *pair):
                raise BadEvidence(f"evidence {side} is not signed by {d['trainer']}")

    def _items(self, prefix: str) -> list[tuple[str, str]]:
        rows = self.state.query(
            "SELECT key, value FROM meta WHERE key >= ? AND key < ? ORDER BY key",
            (prefix, prefix + "\uffff"),
        )
        return [(str(k), str(v)) for k, v in rows]

    def report_observed(self) -> list[Action]:
        """Report every double signing seen so far, whatever the job."""
        jobs = {int(k.split(":")[1]) for k, _ in self._items("evidence:")}
        return [a for job_id in sorted(jobs) for a in self._report_double_signs(job_id)]

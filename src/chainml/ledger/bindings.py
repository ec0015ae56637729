"""Typed Python bindings: one class per chainml contract.

Every function of a contract's ABI is a typed method of ``<binding>.functions`` (generated
from the committed ABI: ``chainml.ledger.generated``); what a call returns is a record whose
fields are the ABI's component names (``cm.jobs.job(1).params.rounds``); the events a
transaction emitted are typed records too (``cm.jobs.events.job_created(receipt)``).  The
classes here add what the ABI cannot say: the id a transaction created (read from its event), a
registration signed with an identity's proof of possession, readable method names.
Every revert raises the ``chainml.ledger.errors`` class named by the contract's reason.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from chainml.crypto import keys
from chainml.ledger.artifacts import CONTRACTS
from chainml.ledger.client import LedgerClient, Receipt, TransactionSigner
from chainml.ledger.deploy import Deployment, bind
from chainml.ledger.enums import BatchStatus, ChallengeStatus, JobState, Role, RoundStatus
from chainml.ledger.errors import ChainDataError
from chainml.ledger.generated import (
    Batch,
    Challenge,
    Dataset,
    DatasetsEvents,
    DatasetsFunctions,
    Grant,
    Identity,
    Job,
    JobParams,
    JobsEvents,
    JobsFunctions,
    Model,
    ModelsEvents,
    ModelsFunctions,
    ReceiptsEvents,
    ReceiptsFunctions,
    RegistryEvents,
    RegistryFunctions,
    Round,
    Version,
)

E = TypeVar("E")

__all__ = [
    "BINDINGS",
    "Batch",
    "BatchStatus",
    "Chainml",
    "Challenge",
    "ChallengeStatus",
    "Dataset",
    "Datasets",
    "Grant",
    "Identity",
    "Job",
    "JobParams",
    "JobState",
    "Jobs",
    "Model",
    "Models",
    "Receipts",
    "Registry",
    "Role",
    "Round",
    "RoundStatus",
    "Version",
]


def _first(receipt: Receipt, events: Callable[[Receipt], list[E]]) -> E:
    """The first event ``events`` reads from ``receipt``; ``ChainDataError`` if none."""
    found = events(receipt)
    if not found:
        raise ChainDataError(f"transaction {receipt.tx_hash} emitted no {events.__name__} event")
    return found[0]


class _Binding:
    name = ""

    def __init__(self, client: LedgerClient, address: str) -> None:
        self.contract = bind(client, self.name, address)
        self.client = client

    @property
    def address(self) -> str:
        return self.contract.address


class Registry(_Binding):
    name = "Registry"

    def __init__(self, client: LedgerClient, address: str) -> None:
        super().__init__(client, address)
        self.functions = RegistryFunctions(self.contract)
        self.events = RegistryEvents(self.contract)

    def register(
        self,
        signer: TransactionSigner,
        x25519_key: bytes,
        pop: bytes,
        roles: Role,
        endpoint: str,
        stake: int = 0,
    ) -> Receipt:
        return self.functions.register(signer, x25519_key, pop, roles, endpoint, value=stake)

    def register_identity(
        self, identity: keys.Identity, roles: Role, endpoint: str = "", stake: int = 0
    ) -> Receipt:
        """Register ``identity`` (its account signs, with its proof of possession)."""
        pop = identity.proof_of_possession(self.contract.client.chain_id, self.address)
        return self.register(
            identity.account, identity.x25519.public_bytes, pop, roles, endpoint, stake
        )

    def rotate_key(self, signer: TransactionSigner, x25519_key: bytes, pop: bytes) -> Receipt:
        return self.functions.rotate_key(signer, x25519_key, pop)

    def set_endpoint(self, signer: TransactionSigner, endpoint: str) -> Receipt:
        return self.functions.set_endpoint(signer, endpoint)

    def stake(self, signer: TransactionSigner, amount: int) -> Receipt:
        return self.functions.stake(signer, value=amount)

    def request_unbond(self, signer: TransactionSigner, amount: int) -> Receipt:
        return self.functions.request_unbond(signer, amount)

    def withdraw(self, signer: TransactionSigner) -> Receipt:
        return self.functions.withdraw(signer)

    def is_registered(self, account: str) -> bool:
        return self.functions.is_registered(account)

    def party(self, account: str, *, block: int | str = "latest") -> Identity:
        """The registered identity of ``account`` at ``block`` (all zero if it had not
        registered by then)."""
        return self.functions.identities(account, block=block)

    def stake_of(self, account: str) -> int:
        return self.functions.stake_of(account)

    def unbonding_of(self, account: str) -> int:
        return self.functions.unbonding_of(account)

    def total_staked(self) -> int:
        return self.functions.total_staked()

    def slashed_pool(self) -> int:
        return self.functions.slashed_pool()

    def committee(self, seed: bytes, size: int) -> list[str]:
        return list(self.functions.committee(seed, size))


class Datasets(_Binding):
    name = "Datasets"

    def __init__(self, client: LedgerClient, address: str) -> None:
        super().__init__(client, address)
        self.functions = DatasetsFunctions(self.contract)
        self.events = DatasetsEvents(self.contract)

    def commit(
        self, signer: TransactionSigner, root: bytes, record_count: int, schema_hash: bytes
    ) -> int:
        """Commit a data set; returns its id."""
        receipt = self.functions.commit(signer, root, record_count, schema_hash)
        return _first(receipt, self.events.dataset_committed).dataset_id

    def revoke(self, signer: TransactionSigner, dataset_id: int) -> Receipt:
        return self.functions.revoke(signer, dataset_id)

    def get(self, dataset_id: int) -> Dataset:
        return self.functions.get(dataset_id)


class Models(_Binding):
    name = "Models"

    def __init__(self, client: LedgerClient, address: str) -> None:
        super().__init__(client, address)
        self.functions = ModelsFunctions(self.contract)
        self.events = ModelsEvents(self.contract)

    def create_model(self, signer: TransactionSigner, name: str) -> int:
        """Create a model; returns its id."""
        receipt = self.functions.create_model(signer, name)
        return _first(receipt, self.events.model_created).model_id

    def publish_version(
        self,
        signer: TransactionSigner,
        model_id: int,
        ciphertext_cid: str,
        manifest_cid: str,
        plaintext_commitment: bytes,
        parent_version: int = 0,
        job_id: int = 0,
    ) -> int:
        """Publish a version of ``model_id``; returns the version's id."""
        receipt = self.functions.publish_version(
            signer,
            model_id,
            ciphertext_cid,
            manifest_cid,
            plaintext_commitment,
            parent_version,
            job_id,
        )
        return _first(receipt, self.events.version_published).version_id

    def grant(
        self,
        signer: TransactionSigner,
        version_id: int,
        grantee: str,
        expiry: int,
        wrapped_key_ref: str,
    ) -> int:
        """Grant ``grantee`` access to a version; returns the grant's id."""
        receipt = self.functions.grant(signer, version_id, grantee, expiry, wrapped_key_ref)
        return _first(receipt, self.events.grant_issued).grant_id

    def revoke(self, signer: TransactionSigner, grant_id: int) -> Receipt:
        return self.functions.revoke(signer, grant_id)

    def transfer_ownership(
        self, signer: TransactionSigner, model_id: int, new_owner: str
    ) -> Receipt:
        return self.functions.transfer_ownership(signer, model_id, new_owner)

    def has_access(self, version_id: int, account: str) -> bool:
        return self.functions.has_access(version_id, account)

    def model(self, model_id: int) -> Model:
        return self.functions.get_model(model_id)

    def version(self, version_id: int) -> Version:
        return self.functions.get_version(version_id)

    def grant_info(self, grant_id: int) -> Grant:
        return self.functions.get_grant(grant_id)


class Jobs(_Binding):
    name = "Jobs"

    def __init__(self, client: LedgerClient, address: str) -> None:
        super().__init__(client, address)
        self.functions = JobsFunctions(self.contract)
        self.events = JobsEvents(self.contract)

    def create_job(self, signer: TransactionSigner, params: JobParams, escrow: int) -> int:
        """Post a job with ``escrow`` wei; returns its id."""
        receipt = self.functions.create_job(signer, params, value=escrow)
        return _first(receipt, self.events.job_created).job_id

    def join(self, signer: TransactionSigner, job_id: int) -> int:
        """Join a job; returns the participant index (from 1)."""
        receipt = self.functions.join(signer, job_id)
        return _first(receipt, self.events.joined).index

    def cancel(self, signer: TransactionSigner, job_id: int) -> Receipt:
        return self.functions.cancel(signer, job_id)

    def submit_round(
        self,
        signer: TransactionSigner,
        job_id: int,
        round_no: int,
        aggregate_cid: str,
        commitment_root: bytes,
        bitmap: int,
    ) -> Receipt:
        return self.functions.submit_round(
            signer, job_id, round_no, aggregate_cid, commitment_root, bitmap
        )

    def challenge(
        self, signer: TransactionSigner, job_id: int, round_no: int, reason_hash: bytes
    ) -> int:
        """Challenge a round result; returns the challenge's id."""
        receipt = self.functions.challenge(signer, job_id, round_no, reason_hash)
        return _first(receipt, self.events.challenge_opened).challenge_id

    def vote(self, signer: TransactionSigner, challenge_id: int, uphold: bool) -> Receipt:
        return self.functions.vote(signer, challenge_id, uphold)

    def resolve(self, signer: TransactionSigner, challenge_id: int) -> Receipt:
        return self.functions.resolve(signer, challenge_id)

    def finalize(self, signer: TransactionSigner, job_id: int) -> Receipt:
        return self.functions.finalize(signer, job_id)

    def claim_reward(self, signer: TransactionSigner, job_id: int) -> int:
        """Claim a participant's reward; returns the amount paid."""
        receipt = self.functions.claim_reward(signer, job_id)
        return _first(receipt, self.events.reward_claimed).amount

    def refund(self, signer: TransactionSigner, job_id: int) -> int:
        """Refund what a job's escrow has left to its requester; returns the amount."""
        receipt = self.functions.refund(signer, job_id)
        return _first(receipt, self.events.refunded).amount

    def report_double_sign(
        self,
        signer: TransactionSigner,
        job_id: int,
        round_no: int,
        participant: str,
        evidence: Sequence[tuple[bytes, bytes]],
    ) -> int:
        """``evidence``: two (commitment, signature) pairs by ``participant``; returns the
        amount slashed."""
        (ca, sa), (cb, sb) = evidence
        receipt = self.functions.report_double_sign(
            signer, job_id, round_no, participant, ca, sa, cb, sb
        )
        return _first(receipt, self.events.double_sign_slashed).slashed

    def job_count(self) -> int:
        """Jobs posted so far: their ids run from 1 to this."""
        return self.functions.job_count()

    def job(self, job_id: int, *, block: int | str = "latest") -> Job:
        """Job ``job_id`` as it stood at ``block``."""
        return self.functions.get_job(job_id, block=block)

    def round(self, job_id: int, round_no: int) -> Round:
        return self.functions.get_round(job_id, round_no)

    def challenge_info(self, challenge_id: int) -> Challenge:
        return self.functions.get_challenge(challenge_id)

    def verify_inclusion(
        self,
        job_id: int,
        round_no: int,
        participant: str,
        commitment: bytes,
        proof: Sequence[bytes],
    ) -> bool:
        return self.functions.verify_inclusion(job_id, round_no, participant, commitment, proof)

    def reward_of(self, job_id: int, account: str) -> int:
        return self.functions.reward_of(job_id, account)

    def escrow_held(self) -> int:
        return self.functions.escrow_held()


class Receipts(_Binding):
    name = "Receipts"

    def __init__(self, client: LedgerClient, address: str) -> None:
        super().__init__(client, address)
        self.functions = ReceiptsFunctions(self.contract)
        self.events = ReceiptsEvents(self.contract)

    def deposit(self, signer: TransactionSigner, amount: int) -> Receipt:
        return self.functions.deposit(signer, value=amount)

    def request_withdrawal(self, signer: TransactionSigner, amount: int) -> Receipt:
        return self.functions.request_withdrawal(signer, amount)

    def withdraw(self, signer: TransactionSigner) -> Receipt:
        return self.functions.withdraw(signer)

    def post_batch(
        self, signer: TransactionSigner, client: str, root: bytes, count: int, amount: int
    ) -> int:
        """Post a batch of receipts against ``client``'s deposit; returns the batch's id."""
        receipt = self.functions.post_batch(signer, client, root, count, amount)
        return _first(receipt, self.events.batch_posted).batch_id

    def dispute(self, signer: TransactionSigner, batch_id: int, reason_hash: bytes) -> Receipt:
        return self.functions.dispute(signer, batch_id, reason_hash)

    def settle(self, signer: TransactionSigner, batch_id: int) -> Receipt:
        return self.functions.settle(signer, batch_id)

    def withdraw_earnings(self, signer: TransactionSigner) -> Receipt:
        return self.functions.withdraw_earnings(signer)

    def available(self, account: str) -> int:
        return self.functions.available(account)

    def earnings(self, account: str) -> int:
        return self.functions.earnings(account)

    def batch(self, batch_id: int) -> Batch:
        return self.functions.get_batch(batch_id)


# contract name -> binding class, one for each of artifacts.CONTRACTS
BINDINGS: dict[str, type[_Binding]] = {
    cls.name: cls for cls in (Registry, Datasets, Models, Jobs, Receipts)
}


@dataclass
class Chainml:
    """All of chainml's contracts in one deployment, bound to one client: one field per
    contract of ``artifacts.CONTRACTS``, named in lower case."""

    registry: Registry
    datasets: Datasets
    models: Models
    jobs: Jobs
    receipts: Receipts

    @classmethod
    def connect(cls, client: LedgerClient, deployment: Deployment) -> Chainml:
        """Bind every contract of ``deployment``; raises ``ChainDataError`` if ``client`` is
        on another chain or an address holds no code."""
        deployment.check(client)
        bound = {
            name.lower(): BINDINGS[name](client, deployment.address(name)) for name in CONTRACTS
        }
        return cls(**bound)  # type: ignore[arg-type]

"""The main job on the embedded defaults: a real federated job recorded on chain.

Starts chainml's embedded chain as its own process, deploys the contracts, registers ten
hospitals and a coordinator with stake, has the hospitals commit to their non-IID
(Dirichlet 0.5) shards of the digits data with salted Merkle roots, and starts one node
process per party: each hospital's node holds its own records, the coordinator's node
holds the job configuration and a held-out set.  The coordinator posts a job with escrow;
the hospitals' nodes join it on their own, and from then on the nodes train by
themselves: every round the coordinator's node sends the global model, each hospital's
node trains on its own records, clips and masks its update, and the coordinator's node
learns only their sum through SecAgg+ over signed, sealed envelopes; it records one
transaction per round (the public round record's CID, the Merkle root over the
hospitals' signed commitments, the participant bitmap).  This process only watches, and
audits each round from public data.  Then the challenge window passes, the nodes finalise
and claim, the final model is sealed, its key split 2-of-3 among three hospitals' nodes,
and a grantee opens it through them.
"""

from __future__ import annotations

import json
import secrets
import shutil
import sqlite3
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TypeVar

import numpy as np
from rich.console import Console
from rich.table import Table

from chainml.crypto import (
    DatasetCommitment,
    Identity,
    encode_float_records,
    schema_hash,
)
from chainml.crypto.stream import generate_key
from chainml.errors import ChainmlError
from chainml.inference.receipts import ReceiptBook
from chainml.ledger.anvil import stop_process
from chainml.ledger.bindings import Chainml, JobParams, JobState, Role
from chainml.ledger.client import LedgerClient, LocalSigner
from chainml.ledger.devchain import DEV_KEY, DevChainProcess
from chainml.node import daemon, localnet
from chainml.node.access import LedgerChainView
from chainml.node.inference import check_batches, connect
from chainml.node.keyrelease import fetch_key
from chainml.node.rounds import audit_round
from chainml.storage import access
from chainml.storage.access import unwrap_as_grantee
from chainml.storage.local import LocalBlobStore
from chainml.storage.sealed import load_manifest, open_artifact, seal_artifact
from chainml.training.data import Dataset, dirichlet_partition, load
from chainml.training.job import JobConfig
from chainml.training.models import classifier_from_safetensors, from_safetensors

ETHER = 10**18

SAFETENSORS = "application/vnd.safetensors"
# one hidden layer with the x² activation: the trained model is the one served under CKKS
# SecAgg+ with norm-bound proofs: each hospital proves its update within the clip, for the
# weight its data set on chain backs (docs/protocol/zk-norm.md)
JOB = JobConfig(
    n_features=64, n_classes=10, hidden=(32,), activation="square", epochs=5, lr=0.03,
    norm_proofs=True,
)  # fmt: skip


@dataclass
class Party:
    name: str
    identity: Identity
    roles: Role
    stake: int
    shard: list[int] = field(default_factory=list)
    dataset_id: int = 0
    reward: int = 0


@dataclass
class DemoResult:
    """What the demo did, for the summary and for tests."""

    chain_id: int
    job_id: int
    accuracies: list[float]
    rewards: dict[str, int]
    round_cids: list[str]
    escrow: int
    refund: int
    job_state: JobState
    model_version: int = 0  # the sealed final model on the Models contract
    inference: Served | None = None  # the clinic's paid, encrypted predictions


@dataclass(frozen=True)
class Served:
    agreement: float  # encrypted vs plaintext predictions on the digits test set
    encrypted_accuracy: float
    plaintext_accuracy: float
    receipt_checks: list[tuple[int, str]]  # (batch id, verdict) per batch billed


def run(
    workdir: Path,
    *,
    rounds: int = 3,
    seed: int = 0,
    console: Console | None = None,
    chain_url: str | None = None,
) -> DemoResult:
    """Run the demo; starts (and stops) its own chain unless ``chain_url`` is given."""
    out = console or Console(quiet=True)
    if chain_url is not None:
        return _run(chain_url, workdir, rounds, seed, out)
    if (workdir / "chain").exists():
        shutil.rmtree(workdir / "chain")
    with DevChainProcess(workdir / "chain") as chain:
        out.print(f"[bold]embedded chain[/bold] at {chain.url} (py-evm, data in {workdir})")
        return _run(chain.url, workdir, rounds, seed, out)


def _run(url: str, workdir: Path, rounds: int, seed: int, out: Console) -> DemoResult:
    client = LedgerClient(url)
    step = _stepper(out)

    step("deploy Registry, Datasets, Models, Jobs, Receipts")
    nodes_dir = workdir / "nodes"
    if nodes_dir.exists():
        shutil.rmtree(nodes_dir)
    nodes_dir.mkdir(parents=True)
    cm, dev = localnet.deploy(client, nodes_dir)
    window = 3600

    trainer_roles = Role.DATA_OWNER | Role.TRAINER | Role.VALIDATOR
    parties = [
        Party(f"hospital-{letter}", Identity.generate(), trainer_roles, 3 * ETHER)
        for letter in "abcdefghij"
    ]
    parties[0].roles |= Role.INFERENCE_PROVIDER  # serves the final model once granted it
    parties.append(
        Party("coordinator", Identity.generate(), Role.REQUESTER | Role.AGGREGATOR, 2 * ETHER)
    )
    step(f"register {len(parties)} parties: account, X25519 key with proof of possession, stake")
    for p in parties:
        client.transact(dev, to=p.identity.address, value=20 * ETHER)
        pop = p.identity.proof_of_possession(client.chain_id, cm.registry.address)
        cm.registry.register(
            p.identity.account,
            p.identity.x25519.public_bytes,
            pop,
            p.roles,
            f"http://127.0.0.1/{p.name}",
            p.stake,
        )
    trainers, coordinator = parties[:-1], parties[-1]

    data = load("digits", seed=seed)
    shards = dirichlet_partition(data.y_train, len(trainers), alpha=0.5, seed=seed)
    step("each hospital commits to its digits records (salted Merkle root)")
    for p, shard in zip(trainers, shards, strict=True):
        p.shard = shard.tolist()
        records = encode_float_records(data.x_train[shard], data.y_train[shard])
        dataset = DatasetCommitment.build(records)
        p.dataset_id = cm.datasets.commit(
            p.identity.account, dataset.root, len(records), schema_hash("digits 8x8 float64")
        )

    step("start one node process per party (its keystore encrypted, its API on loopback)")
    password = secrets.token_urlsafe(16)  # this run's only; never written down
    nodes = [
        localnet.init_node(nodes_dir, p.name, password, rpc=url, work=1 << 12, identity=p.identity)
        for p in parties
    ]
    blobs = (workdir / "blobs").resolve()
    for p, n in zip(parties, nodes, strict=True):
        text = n.config.read_text().replace("interval = 1 ", "interval = 0.2 ")
        # one machine: the nodes share the store that IPFS would be across machines
        text = text.replace('dir = "store"', f'dir = "{blobs}"')
        home = n.config.parent
        if p is coordinator:  # held-out data to report accuracy; the job it serves
            np.savez(home / "validation.npz", x=data.x_test, y=data.y_test)
            text = text.replace('# validation = "validation.npz"', 'validation = "validation.npz"')
            (home / "jobs").mkdir(exist_ok=True)
            (home / "jobs" / f"{JOB.config_hash.hex()}.json").write_bytes(JOB.encode())
        else:  # each hospital's own records, which never leave its node
            np.savez(home / "data.npz", x=data.x_train[p.shard], y=data.y_train[p.shard])
            text = text.replace('# data = "data.npz"', 'data = "data.npz"')
        if p.roles & Role.INFERENCE_PROVIDER:  # bill the demo's client within seconds
            text = text.replace("receipt_age = 60 ", "receipt_age = 2 ")
        n.config.write_text(text)
    with ExitStack() as running:
        started = [
            running.enter_context(_NodeProcess(n, password, nodes_dir / n.name / "node.log"))
            for n in nodes
        ]
        for process in started:  # all start side by side; then each must answer
            process.wait_ready()
        for p, n in zip(parties, nodes, strict=True):  # now that each node has its address
            cm.registry.set_endpoint(p.identity.account, n.url)
        out.print("  dashboards: " + "  ".join(f"{n.name} {n.url}/" for n in nodes))
        return _job(
            client,
            cm,
            parties,
            trainers,
            coordinator,
            data,
            workdir,
            rounds,
            seed,
            window,
            out,
            step,
            nodes,
        )


def _job(
    client: LedgerClient,
    cm: Chainml,
    parties: list[Party],
    trainers: list[Party],
    coordinator: Party,
    data: Dataset,
    workdir: Path,
    rounds: int,
    seed: int,
    window: int,
    out: Console,
    step: Callable[[str], None],
    nodes: list[localnet.NodeDir],
) -> DemoResult:
    escrow = 3 * ETHER
    store = LocalBlobStore(workdir / "blobs")
    params = JobParams(
        aggregator=coordinator.identity.address,
        rounds=rounds,
        min_participants=len(trainers) * 7 // 10,  # a round counts with 30% missing
        max_participants=len(trainers),
        min_stake=ETHER,
        challenge_window=window,
        clip_bound=10_000,  # an L2 bound of 10 on each update, in thousandths
        config_hash=JOB.config_hash,
        config_cid=store.put(JOB.encode()),  # published: anyone checks it against the hash
    )
    step(f"coordinator posts a {rounds}-round job with {escrow / ETHER:g} ETH in escrow")
    job_id = cm.jobs.create_job(coordinator.identity.account, params, escrow)
    step("the hospitals' nodes see the job on chain and join it (stake checked)")
    _wait_for(lambda: _slots(cm, job_id, trainers), "the nodes to join")
    coordinator_node = nodes[parties.index(coordinator)]
    accuracies: list[float] = []
    cids: list[str] = []
    for r in range(1, rounds + 1):
        _wait_for(partial(_rounds_done, cm, job_id, r), f"round {r}", 180.0)
        info = cm.jobs.round(job_id, r)
        counted = len(audit_round(cm, store, job_id, r))
        accuracy = float(_node_state(coordinator_node, f"accuracy:{job_id}:{r}") or "nan")
        accuracies.append(accuracy)
        cids.append(info.aggregate_cid)
        step(
            f"round {r}: the hospitals' nodes trained, proved their updates' norms and "
            f"weights and masked them; the coordinator's node checked the proofs and learnt "
            f"only the sum of {counted} updates (SecAgg+); an auditor re-checked the proofs "
            f"and the sum against their commitments alone; accuracy {accuracy:.3f}"
        )

    step("challenge window passes; the nodes finalise the job and claim each reward once")
    client.increase_time(window + 1)
    claimed = _wait_for(lambda: _rewards(cm, job_id, trainers), "the nodes to claim")
    for p in trainers:
        p.reward = claimed[p.identity.address]
    final = _final_weights(cm, store, coordinator, coordinator_node, job_id, rounds)
    opened = _release_model(
        cm, store, coordinator, trainers[:3], job_id, generate_key(), final, step
    )
    served = _paid_inference(client, cm, trainers[0], final, data, step)
    refund = 0
    if escrow - sum(p.reward for p in trainers) > 0:
        refund = cm.jobs.refund(coordinator.identity.account, job_id)
    job = cm.jobs.job(job_id)
    result = DemoResult(
        chain_id=client.chain_id,
        job_id=job_id,
        accuracies=accuracies,
        rewards={p.name: p.reward for p in trainers},
        round_cids=cids,
        escrow=escrow,
        refund=refund,
        job_state=job.state,
        model_version=opened,
        inference=served,
    )
    _summary(out, cm, client, parties, job_id, result)
    if sys.stdin.isatty() and out.is_terminal:
        out.print(f"dashboard: {nodes[0].url}/  (nodes still running; press Enter to stop them)")
        input()
    return result


def _release_model(
    cm: Chainml,
    store: LocalBlobStore,
    owner: Party,
    guardians: list[Party],
    job_id: int,
    key: bytes,
    weights: bytes,
    step: Callable[[str], None],
) -> int:
    """The requester publishes the sealed final model, splits its key 2-of-3 among the
    hospitals' nodes as guardians and grants it to hospital-a, which then gets the key
    from the guardians' APIs and opens the model."""
    model_id = cm.models.create_model(owner.identity.account, f"digits job {job_id}")
    sealed = seal_artifact(
        store, key, weights, artifact_id=f"model-{model_id}", version=1, media_type=SAFETENSORS
    )
    version = cm.models.publish_version(
        owner.identity.account,
        model_id,
        sealed.manifest.ciphertext_cid,
        sealed.manifest_cid,
        sealed.plaintext_commitment,
        job_id=job_id,
    )
    view = LedgerChainView(cm)
    bundle = access.split_among_guardians(
        view, key, version, [g.identity.address for g in guardians], threshold=2
    )
    grantee = guardians[0]
    expiry = view.now() + 30 * 24 * 3600
    grant = cm.models.grant(
        owner.identity.account, version, grantee.identity.address, expiry, store.put(bundle)
    )
    step(
        f"the model is sealed as version {version} ({sealed.manifest.ciphertext_cid[:16]}…), "
        f"its key split 2-of-3 among the hospitals' nodes; grant {grant} to {grantee.name}"
    )
    manifest = load_manifest(store, cm.models.version(version).manifest_cid)
    released = fetch_key(grantee.identity, cm, store, grant, manifest)
    params = from_safetensors(open_artifact(store, released, manifest))
    step(
        f"{grantee.name} asked the guardians' nodes, got 2 shares, rebuilt the key and opened "
        f"the model ({sum(v.size for v in params.values())} parameters)"
    )
    return version


def _paid_inference(
    client: LedgerClient,
    cm: Chainml,
    provider: Party,
    weights: bytes,
    data: Dataset,
    step: Callable[[str], None],
) -> Served:
    """A clinic prepays, gets encrypted predictions for the test digits from the provider
    (hospital-a's node, which opened the model through the guardians), checks them against
    the plaintext model and checks the receipts batch the provider posts on chain."""
    clinic = Identity.generate()
    client.transact(LocalSigner.from_key(DEV_KEY), to=clinic.address, value=ETHER)
    cm.receipts.deposit(clinic.account, ETHER // 100)
    step(f"a clinic ({clinic.address[:10]}…) prepays 0.01 ETH on the Receipts contract")
    book = ReceiptBook(clinic.address, client.chain_id, cm.receipts.address)
    # hospital-a's node opens the model through the guardians as soon as it sees its grant
    inference = connect(cm, clinic, provider.identity.address, book=book, wait=60)
    model, _, _ = classifier_from_safetensors(weights)
    x, y = data.x_test, data.y_test
    plain = model.predict(x)
    started = time.perf_counter()
    singles = np.array([inference.predict_encrypted(row).argmax() for row in x[:20]])
    per_query = (time.perf_counter() - started) / 20
    batch = inference.predict_encrypted_batch(x).argmax(axis=1)
    agreement = float((batch == plain).mean())
    step(
        f"{provider.name}'s node answered 20 encrypted queries ({per_query * 1e3:.0f} ms each "
        f"over HTTP, {int((singles == plain[:20]).sum())}/20 as in plaintext) and one "
        f"encrypted batch of {len(x)} digits: agreement {agreement:.1%} with plaintext, "
        f"accuracy {float((batch == y).mean()):.3f} (plaintext {float((plain == y).mean()):.3f});"
        " it never saw an input, a prediction or the clinic's secret key"
    )
    checks: list[tuple[int, str]] = []

    def all_billed() -> bool | None:
        checks.extend(c for c in check_batches(cm, clinic, book) if c[1] != "pending")
        disputed = any(v != "ok" for _, v in checks)
        return disputed or len(book.paid) >= len(book.held) or None

    _wait_for(all_billed, "the provider to post every receipt", 60)
    for batch_id, verdict in checks:
        info = cm.receipts.batch(batch_id)
        step(
            f"the provider posted receipt batch {batch_id} on chain ({info.receipt_count} "
            f"signed receipts, {info.amount / ETHER:g} ETH reserved); the clinic checked every "
            f"receipt against its own: {verdict}"
        )
    return Served(agreement, float((batch == y).mean()), float((plain == y).mean()), checks)


def _rounds_done(cm: Chainml, job_id: int, at_least: int) -> bool | None:
    return cm.jobs.job(job_id).rounds_done >= at_least or None


def _node_state(node: localnet.NodeDir, key: str) -> str | None:
    """Read one value of a running node's state (SQLite in WAL mode: readers never block)."""
    db = sqlite3.connect(f"file:{node.config.parent / 'state.db'}?mode=ro", uri=True)
    try:
        row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    finally:
        db.close()
    return str(row[0]) if row else None


def _final_weights(
    cm: Chainml,
    store: LocalBlobStore,
    requester: Party,
    node: localnet.NodeDir,
    job_id: int,
    rounds: int,
) -> bytes:
    """The requester (whose node aggregated) opens the last sealed aggregate: the job's key
    is kept only wrapped to its own X25519 key."""
    view = LedgerChainView(cm)
    ref = _node_state(node, f"job-key:{job_id}")
    if ref is None:
        raise DemoError("the coordinator's node holds no key for the job")
    key = unwrap_as_grantee(
        view, store.get(ref), requester.identity.x25519, job_id, requester.identity.address
    )
    record = json.loads(store.get(cm.jobs.round(job_id, rounds).aggregate_cid))
    return open_artifact(store, key, load_manifest(store, record["model_manifest"]))


class _NodeProcess:
    """A party's node for the length of the demo; its log in ``log``."""

    def __init__(self, node: localnet.NodeDir, password: str, log: Path) -> None:
        self.node, self.password, self.log = node, password, log

    def __enter__(self) -> _NodeProcess:
        self.log.unlink(missing_ok=True)
        self.proc = daemon.spawn(self.node.config, self.password, log=self.log)
        return self

    def wait_ready(self) -> None:
        daemon.wait_ready(self.node.url, self.proc, 120, address=self.node.identity.address)

    def __exit__(self, *exc: object) -> None:
        stop_process(self.proc, timeout=20)


T = TypeVar("T")


def _wait_for(probe: Callable[[], T | None], what: str, timeout: float = 60.0) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value is not None:
            return value
        time.sleep(0.2)
    raise DemoError(f"timed out waiting for {what}")


def _slots(cm: Chainml, job_id: int, trainers: list[Party]) -> list[int] | None:
    slots = [int(cm.jobs.functions.participant_of(job_id, p.identity.address)) for p in trainers]
    return slots if all(slots) else None


def _rewards(cm: Chainml, job_id: int, trainers: list[Party]) -> dict[str, int] | None:
    paid = {
        str(e.args["participant"]): int(e.args["amount"])
        for e in cm.jobs.contract.past_events("RewardClaimed", where={"job_id": job_id})
    }
    return paid if all(p.identity.address in paid for p in trainers) else None


class DemoError(ChainmlError):
    """The demo could not complete."""


def _stepper(out: Console) -> Callable[[str], None]:
    count = [0]

    def step(text: str) -> None:
        count[0] += 1
        out.print(f"[cyan]{count[0]:>2}.[/cyan] {text}")

    return step


def _summary(
    out: Console,
    cm: Chainml,
    client: LedgerClient,
    parties: list[Party],
    job_id: int,
    result: DemoResult,
) -> None:
    table = Table(title=f"parties on chain {result.chain_id}")
    for col in ("party", "account", "roles", "stake (ETH)", "data set", "records", "reward (ETH)"):
        table.add_column(col)
    for p in parties:
        ds = cm.datasets.get(p.dataset_id) if p.dataset_id else None
        roles = cm.registry.party(p.identity.address).roles
        table.add_row(
            p.name,
            p.identity.address[:10] + "…",
            "|".join(r.name.lower() for r in Role if r in roles and r.name),
            f"{cm.registry.stake_of(p.identity.address) / ETHER:g}",
            f"#{p.dataset_id} {ds.merkle_root.hex()[:10]}…" if ds else "-",
            str(ds.record_count) if ds else "-",
            f"{p.reward / ETHER:.6f}" if p.reward else "-",
        )
    out.print(table)
    job = cm.jobs.job(job_id)
    rounds = Table(
        title=f"job {job_id}: {job.state.name.lower()}, escrow {result.escrow / ETHER:g} ETH"
    )
    for col in ("round", "sealed aggregate (CID)", "commitment root", "bitmap", "test accuracy"):
        rounds.add_column(col)
    for r, acc in enumerate(result.accuracies, start=1):
        info = cm.jobs.round(job_id, r)
        rounds.add_row(
            str(r),
            info.aggregate_cid,
            info.commitment_root.hex()[:16] + "…",
            bin(info.bitmap),
            f"{acc:.3f}",
        )
    out.print(rounds)
    out.print(
        f"escrow left in Jobs: {cm.jobs.escrow_held()} wei; "
        f"refund of rounding remainder: {result.refund} wei; "
        f"head block {client.block_number()}"
    )

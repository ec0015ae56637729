"""Ledger: transactions per second on the embedded chain and on Anvil, gas of every contract
function, and gas of a round result for 4, 32 and 256 participants.

Baseline: Anvil, an independent Ethereum node, running the same locally signed workload in
the same run.  Round-result gas is measured on Anvil (fast to fill with 256 participants)
and checked for growth against the 4-participant round.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, cast

from chainml.crypto import Identity, keccak256
from chainml.ledger.anvil import AnvilProcess
from chainml.ledger.bindings import Chainml, JobParams, Role
from chainml.ledger.client import LedgerClient, LocalSigner, Receipt, TransactionSigner
from chainml.ledger.deploy import Deployment, SystemParameters, deploy_system
from chainml.ledger.devchain import DEV_KEY, DevChainProcess

ETHER = 10**18


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class GasRecorder(LedgerClient):
    """A client that remembers the gas of every transaction, by target and selector."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.gas: dict[tuple[str, bytes], list[int]] = defaultdict(list)

    def transact(self, signer: TransactionSigner, **kw: Any) -> Receipt:
        receipt = super().transact(signer, **kw)
        to = kw.get("to")
        self.gas[(to.lower(), kw.get("data", b"")[:4]) if to else ("", b"")].append(
            receipt.gas_used
        )
        return receipt

    def by_function(self, deployment: Deployment) -> dict[str, int]:
        """Highest gas per contract function (``withdraw()`` is in two contracts)."""
        names = {("", b""): "deploy"}
        for contract, selectors in _selectors().items():
            address = deployment.address(contract).lower()
            for selector, name in selectors.items():
                names[(address, selector)] = f"{contract}.{name}"
        return {names[key]: max(values) for key, values in self.gas.items() if key in names}


def throughput(url: str, n: int) -> float:
    """Locally signed Datasets.commit transactions, each awaited: transactions per second."""
    client = LedgerClient(url)
    dev = LocalSigner.from_key(DEV_KEY)
    cm = Chainml.connect(client, deploy_system(client, dev))
    sender = LocalSigner.generate()
    client.transact(dev, to=sender.address, value=10 * ETHER)
    start = time.perf_counter()
    for i in range(n):
        cm.datasets.commit(sender, keccak256(i.to_bytes(8, "big")), 100, b"\1" * 32)
    return n / (time.perf_counter() - start)


def _selectors() -> dict[str, dict[bytes, str]]:
    from eth_utils.abi import function_abi_to_4byte_selector

    from chainml.ledger import artifacts

    return {
        contract: {
            function_abi_to_4byte_selector(cast(Any, item)): item["name"]
            for item in artifacts.load(contract).abi
            if item.get("type") == "function"
        }
        for contract in artifacts.contract_names()
    }


def _party(
    client: LedgerClient, dev: LocalSigner, cm: Chainml, roles: Role, stake: int
) -> Identity:
    ident = Identity.generate()
    client.transact(dev, to=ident.address, value=stake + 20 * ETHER)
    cm.registry.register_identity(ident, roles, "http://x", stake)
    return ident


def lifecycle_gas(url: str) -> dict[str, int]:
    """Gas of each contract function, from one scripted run through every flow."""
    from chainml.crypto import sign_round_commitment

    client = GasRecorder(url)
    dev = LocalSigner.from_key(DEV_KEY)
    deployment = deploy_system(client, dev, SystemParameters(unbonding_delay=10))
    cm = Chainml.connect(client, deployment)
    parties = [_party(client, dev, cm, Role.TRAINER | Role.VALIDATOR, 3 * ETHER) for _ in range(5)]
    agg = _party(client, dev, cm, Role.AGGREGATOR, 3 * ETHER)
    a, b = parties[0], parties[1]
    cm.datasets.revoke(a.account, cm.datasets.commit(a.account, b"\1" * 32, 10, b"\2" * 32))
    model = cm.models.create_model(a.account, "m")
    version = cm.models.publish_version(a.account, model, "bafy-ct", "bafy-man", b"\3" * 32)
    now = int(client.block("latest")["timestamp"], 16)
    cm.models.revoke(a.account, cm.models.grant(a.account, version, b.address, now + 999, "k"))
    cm.models.transfer_ownership(a.account, model, b.address)
    cm.registry.rotate_key(
        a.account,
        a.x25519.public_bytes,
        a.proof_of_possession(client.chain_id, cm.registry.address),
    )
    cm.registry.set_endpoint(a.account, "http://y")
    cm.registry.stake(a.account, ETHER)
    cm.registry.request_unbond(a.account, ETHER)
    client.increase_time(11)
    cm.registry.withdraw(a.account)
    params = JobParams(agg.address, 1, 1, 5, ETHER, 60)
    job = cm.jobs.create_job(a.account, params, ETHER)
    for p in parties[:3]:
        cm.jobs.join(p.account, job)
    cm.jobs.submit_round(agg.account, job, 1, "bafy-round", b"\4" * 32, 0b111)
    challenge = cm.jobs.challenge(parties[0].account, job, 1, b"\5" * 32)
    members = {p.address: p for p in parties}
    info = cm.jobs.challenge_info(challenge)
    for addr in info.committee[:1]:
        cm.jobs.vote(members[addr].account, challenge, False)
    client.increase_time(61)
    cm.jobs.resolve(dev, challenge)
    cm.jobs.finalize(dev, job)
    for p in parties[:3]:
        cm.jobs.claim_reward(p.account, job)
    cm.jobs.refund(a.account, job)
    job2 = cm.jobs.create_job(a.account, params, ETHER)
    cm.jobs.join(parties[3].account, job2)
    sa = sign_round_commitment(
        parties[3].account, client.chain_id, cm.jobs.address, job2, 1, b"\6" * 32
    )
    sb = sign_round_commitment(
        parties[3].account, client.chain_id, cm.jobs.address, job2, 1, b"\7" * 32
    )
    cm.jobs.report_double_sign(
        b.account, job2, 1, parties[3].address, [(b"\6" * 32, sa), (b"\7" * 32, sb)]
    )
    cm.registry.functions.claim_slash_reward(b.account)
    cm.jobs.cancel(a.account, job2)
    cm.receipts.deposit(a.account, ETHER)
    b1 = cm.receipts.post_batch(b.account, a.address, b"\1" * 32, 10, ETHER // 4)
    b2 = cm.receipts.post_batch(b.account, a.address, b"\2" * 32, 10, ETHER // 4)
    cm.receipts.dispute(a.account, b2, b"\3" * 32)
    cm.receipts.request_withdrawal(a.account, ETHER // 4)
    client.increase_time(2 * 24 * 3600 + 1)
    cm.receipts.settle(dev, b1)
    cm.receipts.withdraw_earnings(b.account)
    cm.receipts.withdraw(a.account)
    return dict(sorted(client.by_function(deployment).items()))


def unmeasured(gas: dict[str, int]) -> list[str]:
    """State-changing functions the scripted run did not call (Registry.slash is called by
    Jobs inside resolve and report_double_sign, so its gas is inside theirs)."""
    from chainml.ledger import artifacts

    return [
        f"{contract}.{item['name']}"
        for contract in artifacts.contract_names()
        for item in artifacts.load(contract).abi
        if item.get("type") == "function"
        and item.get("stateMutability") not in ("view", "pure")
        and f"{contract}.{item['name']}" not in gas
    ]


def round_gas(url: str, sizes: list[int]) -> dict[str, int]:
    """Gas of Jobs.submit_round with each number of participants."""
    client = LedgerClient(url)
    dev = LocalSigner.from_key(DEV_KEY)
    cm = Chainml.connect(client, deploy_system(client, dev))
    agg = LocalSigner.generate()
    client.transact(dev, to=agg.address, value=ETHER)
    result = {}
    for n in sizes:
        job = cm.jobs.create_job(dev, JobParams(agg.address, 1, 1, n, 0, 60), 1)
        for _ in range(n):
            ident = Identity.generate()
            client.transact(dev, to=ident.address, value=ETHER // 10)
            pop = ident.proof_of_possession(client.chain_id, cm.registry.address)
            cm.registry.register(ident.account, ident.x25519.public_bytes, pop, Role.TRAINER, "x")
            cm.jobs.join(ident.account, job)
        cid = "bafkreig3zk52nwaoloma3xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
        receipt = cm.jobs.submit_round(agg, job, 1, cid, keccak256(bytes([n % 256])), (1 << n) - 1)
        result[str(n)] = receipt.gas_used
        log(f"round result with {n} participants: {receipt.gas_used} gas")
    return result


def _median_us(fn: Any, n: int) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[n // 2] * 1e6


def against_web3(url: str, n: int, txs: int) -> dict[str, Any]:
    """chainml's typed bindings against web3.py's contract objects on the same chain and
    workload: a struct-returning call (``Jobs.get_job``, median of ``n``) and ``txs`` locally
    signed ``Datasets.commit`` transactions, each awaited."""
    from web3 import HTTPProvider, Web3

    from chainml.ledger import artifacts

    client = LedgerClient(url)
    dev = LocalSigner.from_key(DEV_KEY)
    deployment = deploy_system(client, dev)
    cm = Chainml.connect(client, deployment)
    sender = LocalSigner.generate()
    client.transact(dev, to=sender.address, value=10 * ETHER)
    cm.jobs.create_job(dev, JobParams(sender.address, 1, 1, 4, 0, 60), 1)
    w3 = Web3(HTTPProvider(url))
    jobs = w3.eth.contract(
        address=Web3.to_checksum_address(deployment.address("Jobs")), abi=artifacts.load("Jobs").abi
    )
    datasets = w3.eth.contract(
        address=Web3.to_checksum_address(deployment.address("Datasets")),
        abi=artifacts.load("Datasets").abi,
    )
    assert jobs.functions.get_job(1).call()[1][1] == cm.jobs.job(1).params.rounds == 1

    chainml_call = _median_us(lambda: cm.jobs.job(1), n)
    web3_call = _median_us(lambda: jobs.functions.get_job(1).call(), n)

    start = time.perf_counter()
    for i in range(txs):
        cm.datasets.commit(sender, keccak256(b"c" + i.to_bytes(8, "big")), 100, b"\1" * 32)
    chainml_tps = txs / (time.perf_counter() - start)
    account = w3.eth.account.from_key(DEV_KEY)
    nonce = w3.eth.get_transaction_count(account.address)
    start = time.perf_counter()
    for i in range(txs):
        tx = datasets.functions.commit(
            keccak256(b"w" + i.to_bytes(8, "big")), 100, b"\1" * 32
        ).build_transaction(cast(Any, {"from": account.address, "nonce": nonce + i}))
        signed = account.sign_transaction(tx)
        receipt = w3.eth.wait_for_transaction_receipt(
            w3.eth.send_raw_transaction(signed.raw_transaction), poll_latency=0.02
        )
        assert receipt["status"] == 1
    web3_tps = txs / (time.perf_counter() - start)
    client.close()
    log(
        f"get_job: chainml {chainml_call:.0f} us, web3 {web3_call:.0f} us; "
        f"commit: chainml {chainml_tps:.1f} tx/s, web3 {web3_tps:.1f} tx/s"
    )
    return {
        "baseline": "web3.py contract objects (HTTPProvider), same chain, same run",
        "get_job_call_us": {"chainml": round(chainml_call), "web3": round(web3_call)},
        "calls": n,
        "transactions": txs,
        "commit_tx_per_s": {"chainml": round(chainml_tps, 1), "web3": round(web3_tps, 1)},
        "ratio_call_web3_over_chainml": round(web3_call / chainml_call, 2),
        "ratio_tx_chainml_over_web3": round(chainml_tps / web3_tps, 2),
    }


def run(quick: bool) -> dict[str, Any]:
    n = 100 if quick else 1000
    with tempfile.TemporaryDirectory() as tmp, DevChainProcess(Path(tmp) / "chain") as dev_chain:
        with AnvilProcess() as anvil:
            log(f"{n} transactions on each chain")
            tps_dev = throughput(dev_chain.url, n)
            tps_anvil = throughput(anvil.url, n)
            log(f"embedded {tps_dev:.1f} tx/s, anvil {tps_anvil:.1f} tx/s")
            bindings = against_web3(dev_chain.url, n, n // 4)
            gas = lifecycle_gas(dev_chain.url)
            rounds = round_gas(anvil.url, [4, 32, 256])
    return {
        "benchmark": "ledger",
        "baseline": "Anvil 1.7.1 (independent Ethereum node), same locally signed workload",
        "transactions": n,
        "tx_per_s": {"embedded": round(tps_dev, 1), "anvil": round(tps_anvil, 1)},
        "ratio_embedded_to_anvil": round(tps_dev / tps_anvil, 3),
        "bindings_against_web3": bindings,
        "gas": gas,
        "functions_not_measured": unmeasured(gas),
        "round_result_gas": rounds,
        "round_result_gas_256_over_4": round(rounds["256"] / rounds["4"], 4),
    }

"""Deploy chainml's contracts and find them again.

``deploy_system`` deploys Registry, Datasets, Models, Jobs and Receipts from the committed
artifacts, hands the Registry's slashing right to Jobs (once, then frozen), and returns a
``Deployment`` that can be saved as JSON and loaded by every party's node.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from eth_utils.address import to_checksum_address

from chainml.ledger import artifacts
from chainml.ledger.abi import ContractABI
from chainml.ledger.client import BoundContract, LedgerClient, TransactionSigner
from chainml.ledger.errors import ChainDataError, DeploymentFileError


@dataclass(frozen=True)
class SystemParameters:
    """Constructor parameters of the contracts (seconds and wei)."""

    unbonding_delay: int = 7 * 24 * 3600
    min_validator_stake: int = 10**18
    dispute_window: int = 24 * 3600
    withdrawal_delay: int = 2 * 24 * 3600


@dataclass(frozen=True)
class Deployment:
    """Where chainml's contracts live on one chain."""

    chain_id: int
    registry: str
    datasets: str
    models: str
    jobs: str
    receipts: str
    block: int

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> Deployment:
        try:
            data = json.loads(path.read_text())
            return cls(**{k: data[k] for k in cls.__dataclass_fields__})
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DeploymentFileError(
                f"{path} is missing or not a chainml deployment file"
            ) from exc

    def check(self, client: LedgerClient) -> None:
        """Raise ``ChainDataError`` unless ``client`` is on this chain with code at each address."""
        if client.chain_id != self.chain_id:
            raise ChainDataError(f"deployment is for chain {self.chain_id}, not {client.chain_id}")
        for name in ("registry", "datasets", "models", "jobs", "receipts"):
            if not client.code(getattr(self, name)):
                raise ChainDataError(f"no contract code at the {name} address")


def bind(client: LedgerClient, name: str, address: str) -> BoundContract:
    """A ``BoundContract`` for contract ``name`` (artifact name) at ``address``."""
    return BoundContract(client, address, ContractABI(artifacts.load(name).abi))


def deploy_contract(
    client: LedgerClient, signer: TransactionSigner, name: str, *args: object
) -> BoundContract:
    """Deploy one contract from its committed artifact."""
    art = artifacts.load(name)
    abi = ContractABI(art.abi)
    address, _ = client.deploy(signer, abi, art.bytecode, list(args))
    return BoundContract(client, address, abi)


def deploy_system(
    client: LedgerClient,
    deployer: TransactionSigner,
    params: SystemParameters | None = None,
) -> Deployment:
    """Deploy all five contracts and wire Jobs as the Registry's slasher."""
    p = params or SystemParameters()
    start = client.block_number()
    registry = deploy_contract(
        client, deployer, "Registry", p.unbonding_delay, p.min_validator_stake
    )
    datasets = deploy_contract(client, deployer, "Datasets")
    models = deploy_contract(client, deployer, "Models")
    jobs = deploy_contract(client, deployer, "Jobs", registry.address)
    receipts = deploy_contract(client, deployer, "Receipts", p.dispute_window, p.withdrawal_delay)
    registry.transact(deployer, "set_slasher", jobs.address)
    return Deployment(
        chain_id=client.chain_id,
        registry=to_checksum_address(registry.address),
        datasets=datasets.address,
        models=models.address,
        jobs=jobs.address,
        receipts=receipts.address,
        block=start,
    )

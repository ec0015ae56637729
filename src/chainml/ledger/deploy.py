"""Deploy chainml's contracts and find them again.

``deploy_system`` deploys every contract of ``artifacts.CONTRACTS`` in order from the
committed artifacts, each constructor argument found by its ABI name (a field of
``SystemParameters``, or the lower-case name of a contract deployed before), hands the
Registry's slashing right to Jobs (once, then frozen), and returns a ``Deployment`` that can
be saved as JSON and loaded by every party's node.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from eth_utils.address import is_address, to_checksum_address

from chainml.ledger import artifacts
from chainml.ledger.abi import ContractABI
from chainml.ledger.artifacts import CONTRACTS
from chainml.ledger.client import BoundContract, LedgerClient, TransactionSigner
from chainml.ledger.errors import ChainDataError, DeploymentFileError, InvalidParameter


@dataclass(frozen=True)
class SystemParameters:
    """Constructor parameters of the contracts (seconds and wei), by constructor argument
    name (Vyper's leading underscore left out)."""

    unbonding_delay: int = 7 * 24 * 3600
    min_validator_stake: int = 10**18
    dispute_window: int = 24 * 3600
    withdrawal_delay: int = 2 * 24 * 3600


def _key(name: str) -> str:
    return name.lower()


@dataclass(frozen=True)
class Deployment:
    """Where chainml's contracts live on one chain: an address for each of ``CONTRACTS``.

    The file holds ``chain_id``, ``block`` and one key per contract, its name in lower case
    (``"registry"``); ``deployment.registry`` reads the same address.
    """

    chain_id: int
    block: int
    addresses: Mapping[str, str]

    def __post_init__(self) -> None:
        if set(self.addresses) != set(CONTRACTS):
            raise InvalidParameter(f"a deployment needs an address for each of {CONTRACTS}")

    def address(self, name: str) -> str:
        """The address of contract ``name`` (as in ``CONTRACTS``)."""
        return self.addresses[name]

    def __getattr__(self, attr: str) -> str:  # only for names that are not fields
        addresses = self.__dict__.get("addresses", {})
        for name in CONTRACTS:
            if _key(name) == attr and name in addresses:
                return str(addresses[name])
        raise AttributeError(attr)

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"chain_id": self.chain_id}
        doc.update({_key(n): self.addresses[n] for n in CONTRACTS})
        doc["block"] = self.block
        return doc

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> Deployment:
        try:
            data = json.loads(path.read_text())
            addresses = {n: data[_key(n)] for n in CONTRACTS}
            if not all(isinstance(a, str) and is_address(a) for a in addresses.values()):
                raise ValueError("not an address")
            chain_id, block = data["chain_id"], data["block"]
            if not isinstance(chain_id, int) or not isinstance(block, int):
                raise TypeError("chain_id and block are integers")
            return cls(chain_id, block, addresses)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DeploymentFileError(
                f"{path} is missing or not a chainml deployment file"
            ) from exc

    def check(self, client: LedgerClient) -> None:
        """Raise ``ChainDataError`` unless ``client`` is on this chain with code at each address."""
        if client.chain_id != self.chain_id:
            raise ChainDataError(f"deployment is for chain {self.chain_id}, not {client.chain_id}")
        for name in CONTRACTS:
            if not client.code(self.addresses[name]):
                raise ChainDataError(f"no contract code at the {_key(name)} address")


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


def constructor_args(
    name: str, params: SystemParameters, deployed: Mapping[str, str]
) -> list[object]:
    """Contract ``name``'s constructor arguments, each found by its ABI name."""
    values: dict[str, object] = asdict(params)
    values.update({_key(n): address for n, address in deployed.items()})
    inputs = [
        item.get("inputs", [])
        for item in artifacts.load(name).abi
        if item.get("type") == "constructor"
    ]
    args = []
    for param in inputs[0] if inputs else []:
        key = str(param["name"]).lstrip("_")
        if key not in values:
            raise InvalidParameter(f"{name}'s constructor takes {key!r}: no value for it")
        args.append(values[key])
    return args


def deploy_system(
    client: LedgerClient,
    deployer: TransactionSigner,
    params: SystemParameters | None = None,
) -> Deployment:
    """Deploy every contract of ``CONTRACTS`` and wire Jobs as the Registry's slasher."""
    p = params or SystemParameters()
    start = client.block_number()
    deployed: dict[str, str] = {}
    for name in CONTRACTS:
        contract = deploy_contract(client, deployer, name, *constructor_args(name, p, deployed))
        deployed[name] = to_checksum_address(contract.address)
    bind(client, "Registry", deployed["Registry"]).transact(
        deployer, "set_slasher", deployed["Jobs"]
    )
    return Deployment(chain_id=client.chain_id, block=start, addresses=deployed)

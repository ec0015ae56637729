"""The ledger seen as ``chainml.storage.access.ChainView``: grants from the Models contract,
X25519 keys from the Registry, time from the latest block."""

from __future__ import annotations

from chainml.ledger import errors as ledger_errors
from chainml.ledger.bindings import Chainml, Grant
from chainml.storage.access import UnknownGrant, UnknownParty


class LedgerChainView:
    def __init__(self, cm: Chainml) -> None:
        self.cm = cm
        self.chain_id = cm.models.client.chain_id
        self.models_address = cm.models.address

    def grant(self, grant_id: int) -> Grant:
        try:
            return self.cm.models.grant_info(grant_id)
        except ledger_errors.UnknownGrant:
            raise UnknownGrant(f"no grant {grant_id} on chain") from None

    def x25519_key(self, account: str) -> bytes:
        key = self.cm.registry.party(account).x25519_key
        if len(key) != 32 or not any(key):
            raise UnknownParty(f"{account} has no identity registered on chain")
        return key

    def now(self) -> int:
        return int(self.cm.models.client.block("latest")["timestamp"], 16)

"""chainml's embedded development chain: py-evm behind standard JSON-RPC, durable on disk."""

from chainml.ledger.devchain.chain import DEV_KEY
from chainml.ledger.devchain.process import DevChainProcess, down, running, up

__all__ = ["DEV_KEY", "DevChainProcess", "down", "running", "up"]

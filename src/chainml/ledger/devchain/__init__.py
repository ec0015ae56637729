"""chainml's embedded development chain: py-evm behind standard JSON-RPC, durable on disk."""

from chainml.ledger.devchain.process import DevChainProcess, down, running, up

__all__ = ["DevChainProcess", "down", "running", "up"]

"""The root of every error chainml raises.

    ChainmlError (ValueError where the caller passed something wrong)
     ├── chainml.crypto.errors.CryptoError
     ├── chainml.ledger.errors.LedgerError
     │    ├── ContractRevert            one subclass per revert reason of the contracts
     │    ├── TransactionTimeout, ChainUnavailable, ...
     └── ... each package adds its own

Third-party errors are caught at the edge of the package that calls the library and
re-raised as one of these with ``raise X(...) from exc`` so the cause is kept.
"""

from __future__ import annotations


class ChainmlError(Exception):
    """Base class of all chainml errors."""

"""chainml: train and serve AI models across organisations that do not trust each other.

Every step is recorded on a proof-of-stake EVM chain; no party sees another's data and
models are never stored in the clear.  See DESIGN.md for the layers:

    cli -> node -> training, inference -> ledger, storage -> crypto
"""

from chainml.errors import ChainmlError

__all__ = ["ChainmlError", "__version__"]
__version__ = "0.1.0"

"""chainml.ledger.devchain."""

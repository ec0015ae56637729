"""chainml.ledger."""

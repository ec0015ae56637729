"""chainml.ledger.audit."""

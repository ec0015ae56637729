"""chainml.node."""

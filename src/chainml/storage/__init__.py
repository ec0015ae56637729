"""chainml.storage."""

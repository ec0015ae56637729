"""chainml.crypto.hazmat."""

"""chainml.crypto."""

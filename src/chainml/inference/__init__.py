"""chainml.inference."""

"""chainml.training."""

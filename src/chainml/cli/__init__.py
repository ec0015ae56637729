"""chainml.cli."""

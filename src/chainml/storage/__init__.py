"""chainml.storage: content-addressed blob stores."""

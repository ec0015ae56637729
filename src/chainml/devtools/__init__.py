"""Tools for developing and testing chainml, left out of the runtime wheel."""

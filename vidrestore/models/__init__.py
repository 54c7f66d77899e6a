"""Network definitions with state-dict compatibility to the official checkpoints, and checkpoint loading."""

"""Everything derived from the engine's rows without running the model: memory, backward, receptive field, closed forms."""

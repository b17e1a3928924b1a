"""The engine: model -> rows, once (fx trace or meta-device run, the costing interpreter, conventions)."""

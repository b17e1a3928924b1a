"""Independent oracles for the tests: they run the real model and share no code with archstat's formulas."""

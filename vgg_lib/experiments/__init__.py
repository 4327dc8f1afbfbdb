"""Experiments (the paper's Section 4; chapters 5, 6, 8 and 9): seed statistics and the claims
rule, run records, the study engine and its sweeps, and one settings module per chapter."""

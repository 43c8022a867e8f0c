"""Monte-Carlo path: torch samplers and estimators (CUDA when present, CPU otherwise)."""

"""Claim modules: each registers its claims with `popgrad.registry.register` at import.

Modules here are discovered automatically (one module per paper area: lemma1, lemma2, ...).
"""

"""Symbolic (sympy) and exact-expectation (float64, exact rationals) path."""

"""Symbolic (sympy) and exact-expectation (float64, exact rationals) path."""

if __name__ == "theory":
    raise ImportError("'theory' is not a top-level package: popgrad installs it as 'popgrad.theory' "
                      "(from popgrad.theory import ...)")

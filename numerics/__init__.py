"""Monte-Carlo path: torch samplers and estimators (CUDA when present, CPU otherwise)."""

if __name__ == "numerics":
    raise ImportError("'numerics' is not a top-level package: popgrad installs it as 'popgrad.numerics' "
                      "(from popgrad.numerics import ...)")

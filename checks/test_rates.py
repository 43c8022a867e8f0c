"""The power-law fits and bootstrap behind the law tables (claims in popgrad/claims/rates.py)."""

from popgrad.registry import assert_claim


def test_rates_power_law_exact():
    # power_law_exponents / loglog_slope recover planted exponents (and an interaction) to 1e-10; = linregress.
    assert_claim("rates.power_law_exact")


def test_rates_bootstrap_interval():
    # power_law_bootstrap's 95 % ends are the exact bootstrap 2.5/97.5 % points of the exponent; = a plain loop.
    assert_claim("rates.bootstrap_interval")

"""The power-law fits and bootstrap behind the law tables (claims in popgrad/claims/rates.py)."""

from popgrad.registry import assert_claim


def test_rates_power_law_exact():
    # power_law_exponents / loglog_slope recover planted exponents (and an interaction) to 1e-10; = linregress.
    assert_claim("rates.power_law_exact")


def test_rates_bootstrap_interval():
    # power_law_bootstrap's 95 % ends are the exact bootstrap 2.5/97.5 % points of the exponent; = a plain loop.
    assert_claim("rates.bootstrap_interval")


def test_rates_exact_law_bootstrap():
    # On an exact power law with tiny skewed noise, power_law_bootstrap returns the planted exponent and a 95 %
    # interval centred on it of the noise's width (nested levels); infinite medians are dropped at the binomial rate.
    assert_claim("rates.exact_law_bootstrap")

"""The Monte-Carlo comparator's level and power: MC_Z flags a real bias and rarely a correct estimate.

Every Monte-Carlo claim passes when max_i |mc_i - exact_i| / se_i <= MC_Z over the m entries it
compares (`popgrad.tolerances.MC_Z`). A constant that only loosens cannot make a passing check fail,
so the constant itself is judged here, for the largest m any Monte-Carlo claim compares:

    level  P(max_i |Z_i| > MC_Z),            Z_i ~ N(0, 1) independent: a correct estimate rejected
    power  P(flagged | entry 1 biased by 5 se): a real error of 5 standard errors caught

from the normal law (exact, side one) and by simulating the comparator on normal draws (side two),
with level <= 1e-2 and power >= 0.8 required: too strict a constant (3.5: level 3.7e-2) and too lax a
one (4.5: power 0.69; 6: 0.16) both fail.
"""

from __future__ import annotations

import math

import numpy as np

from popgrad.claims import appendix_a as claims_a, memories as claims_mem, montecarlo as claims_mc
from popgrad.claims import noisy_recall as claims_nr
from popgrad.registry import Claim, Measurement, register
from popgrad.theory import appendix_a as A
from popgrad.tolerances import MC_Z, nanmax, worst_key

BIAS = 5.0                     # standard errors of the planted error
MAX_LEVEL, MIN_POWER = 1e-2, 0.8
LEVEL_DRAWS, POWER_DRAWS = 200_000, 20_000
AGREE_Z = 4.0                  # simulated vs exact, in binomial standard errors of the simulation


def compared_entries() -> dict:
    """The number of (estimate, exact) entries each Monte-Carlo claim compares with MC_Z, from its constants."""
    return {"montecarlo.mu_rate": claims_mc.MU_N ** 2 * len(claims_mc.MU_SIZES),
            "noisy.sampler_vs_engine": (claims_nr.MC_CASE[0] + 1) * (claims_nr.MC_CASE[0] + 2),
            "appendix_a.moments_mc": len(A.QUANTITIES) * len(claims_a.MC_DIMS) * 2,
            "memories.readout_moments_mc": len(claims_mem.MC_CASES) * 2 * 2,
            "memories.infinite_memory_mc": sum(len(ns) for _, ns in claims_mem.HUTTER_CASES),
            "engine.monte_carlo": 3}


def normal_level_power(z: float, m: int, bias: float = BIAS) -> tuple[float, float]:
    """(level, power) of max_i |Z_i| <= z over m independent N(0, 1) entries, from the normal law (erfc)."""
    tail = math.erfc(z / math.sqrt(2))                                     # P(|Z| > z)
    level = -math.expm1(m * math.log1p(-tail))                             # 1 - (1 - tail)^m
    hit = 0.5 * math.erfc((z - bias) / math.sqrt(2)) + 0.5 * math.erfc((z + bias) / math.sqrt(2))   # P(|Z + bias| > z)
    return level, 1 - (1 - hit) * (1 - tail) ** (m - 1)


def simulated_level_power(z: float, m: int, bias: float = BIAS, seed: int = 0) -> tuple[float, float, float, float]:
    """(level, its se, power, its se) of the comparator on simulated estimates mc = exact + se * N(0, 1)."""
    rng = np.random.default_rng(seed)
    exact, se = rng.normal(size=m), rng.uniform(0.5, 2.0, size=m)         # (m,) any values, any standard errors
    alarms = 0
    for _ in range(LEVEL_DRAWS // 20_000):
        mc = exact + se * rng.standard_normal((20_000, m))                 # (R, m)
        alarms += int(((np.abs(mc - exact) / se).max(1) > z).sum())
    mc = exact + se * rng.standard_normal((POWER_DRAWS, m))
    mc[:, 0] += bias * se[0]
    caught = int(((np.abs(mc - exact) / se).max(1) > z).sum())
    lv, pw = alarms / LEVEL_DRAWS, caught / POWER_DRAWS
    return (lv, math.sqrt(max(lv * (1 - lv), 1 / LEVEL_DRAWS) / LEVEL_DRAWS), pw,
            math.sqrt(max(pw * (1 - pw), 1 / POWER_DRAWS) / POWER_DRAWS))              # floors: no zero se


def measure_mc_comparator() -> Measurement:
    entries = compared_entries()
    m = nanmax(entries.values())
    level, power = normal_level_power(MC_Z, m)
    s_level, s_level_se, s_power, s_power_se = simulated_level_power(MC_Z, m)
    agree = max(abs(s_level - level) / s_level_se, abs(s_power - power) / s_power_se)
    error = max(level / MAX_LEVEL, MIN_POWER / max(power, 1e-300), agree / AGREE_Z)
    return Measurement(error, 1.0, "exact",
                       value=f"MC_Z = {MC_Z:g} over m = {m} entries: level {level:.1e}, power at {BIAS:g} se {power:.3f}",
                       note=f"largest m: {worst_key(entries)} ({m}); per entry P(|Z| > {MC_Z:g}) = "
                            f"{math.erfc(MC_Z / math.sqrt(2)):.1e}; simulated level {s_level:.1e} ± {s_level_se:.0e}, "
                            f"power {s_power:.3f} ± {s_power_se:.3f} (agree within {agree:.1f} se); required level <= "
                            f"{MAX_LEVEL:g}, power >= {MIN_POWER:g}",
                       details={"entries": entries, "level": level, "power": power, "sim_level": s_level,
                                "sim_power": s_power})


register(Claim(
    id="uncertainty.mc_comparator",
    statement="the Monte-Carlo tolerance MC_Z, over the largest number of entries a Monte-Carlo claim compares, "
              "rejects a correct estimate with probability <= 1e-2 and flags a 5-standard-error bias in one entry "
              "with probability >= 0.8",
    where="every Monte-Carlo vs exact claim (App. B.3.1, App. A, App. E estimates); popgrad.tolerances",
    compared="level and power of max_i |mc_i - exact_i| / se_i <= MC_Z from the normal law (erfc) vs the comparator "
             "simulated on normal draws; shared: MC_Z, m and the planted bias",
    kind="exact", tolerance=f"level <= {MAX_LEVEL:g}, power >= {MIN_POWER:g}, normal law = simulation within "
                            f"{AGREE_Z:g} binomial se",
    measure=measure_mc_comparator,
    code=("popgrad.claims.mc_comparator.normal_level_power", "popgrad.claims.mc_comparator.simulated_level_power"),
    sides=(("popgrad.claims.mc_comparator.normal_level_power",),
           ("popgrad.claims.mc_comparator.simulated_level_power",))))

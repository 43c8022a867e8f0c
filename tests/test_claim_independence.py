"""Each claim's two sides share no code beyond the data and the embeddings (paper_refs/README.md).

`Claim.sides` names the code of each side; `popgrad.independence.reach` walks, from those names,
every popgrad function or class their source refers to (recursively, local imports included) and
`shared` keeps what both reach outside the allow-list of data, embeddings and input validation.
"""

import pkgutil

import pytest

import popgrad.claims as claims_pkg

from popgrad import independence as ind
from popgrad.registry import Claim, Measurement, all_claims

# The rule is enforced on every claim module: a new module's exact claims must declare their sides.
CHECKED_MODULES = {m.name for m in pkgutil.iter_modules(claims_pkg.__path__, "popgrad.claims.")}
# Exact claims whose two sides live in one sympy function or are one code path by design, checked by review.
BY_REVIEW = {
    "lemma1.gradient_symbolic": "sympy builds eq. (5) by hand and differentiates eq. (4); both in symbolic_gradient_gap",
    "lemma2.gradient_symbolic": "sympy builds the formula by hand and differentiates the loss; one function",
    "lemma4.symbolic": "sympy builds line 1 by hand and differentiates the loss; one function",
    "theorem3.wk2_query_position_sum": "an identity of one matrix (residual of its row sum), evaluated on both "
                                       "autograd-on-enumeration and engine matrices; no second side to compare",
    "training.resume_exact": "a property of one training loop (stopped and resumed = never stopped): both runs are the "
                             "same code by design; what one side adds is the checkpoint round trip",
}


def _claims():
    return [c for c in all_claims() if c.measure.__module__ in CHECKED_MODULES]


def test_every_exact_claim_declares_two_sides():
    """Test that every exact claim of the checked modules names the code of its two sides (or is reviewed)."""
    missing = [c.id for c in _claims() if c.kind == "exact" and not c.sides and c.id not in BY_REVIEW]
    assert not missing, f"exact claims without sides: {missing}"
    assert set(BY_REVIEW) <= {c.id for c in _claims()}


def test_every_compared_field_says_what_the_sides_share():
    """Test that every claim's `compared` text states what its two sides share."""
    bad = [c.id for c in _claims() if "shar" not in c.compared.lower()]
    assert not bad, f"claims whose `compared` does not say what the sides share: {bad}"


@pytest.mark.parametrize("claim", [c for c in all_claims() if c.sides], ids=lambda c: c.id)
def test_sides_share_only_data_and_embeddings(claim):
    """Test that the two sides' call graphs within popgrad meet only in the data/embedding allow-list."""
    assert len(claim.sides) == 2 and all(claim.sides), claim.sides
    common = ind.shared(claim)
    assert not common, f"{claim.id}: both sides reach {sorted(common)}"


def _fake(sides):
    return Claim(id="fake", statement="", where="", compared="", kind="exact", tolerance="",
                 measure=lambda: Measurement(0.0, 0.0, "exact"), sides=sides)


def test_walker_finds_shared_helpers_it_exists_for():
    """Test that the walk follows calls and local imports, and reports a helper both sides use."""
    reach = ind.reach(("popgrad.theory.attention.lemma5_gradient",))
    assert {"popgrad.theory.attention.lemma5_terms", "popgrad.theory.attention._lemma5_parts",
            "popgrad.theory.attention.lemma5_position_factor"} <= reach
    # a local `from popgrad.theory import theorem3 as t3` inside the function is followed
    assert "popgrad.theory.theorem3.three_steps" in ind.reach(("popgrad.claims.theorem3.measure_recall",))
    # Lemma 5's terms and the position factor they call: the shared helper is reported
    assert ind.shared(_fake((("popgrad.theory.attention.lemma5_terms",),
                             ("popgrad.theory.attention.lemma5_position_factor",)))) == \
        {"popgrad.theory.attention.lemma5_position_factor"}
    # the engine's step 3 and its readouts
    assert "popgrad.theory.theorem3.step3_readouts" in ind.shared(_fake(
        (("popgrad.theory.theorem3.step3_W_K1",), ("popgrad.theory.theorem3.step3_readouts",))))
    # data and validation are allowed
    assert ind.allowed("popgrad.data.SecondOccurrenceModel.enumerate")
    assert ind.allowed("popgrad.theory.attention._weighted_set")
    assert not ind.allowed("popgrad.theory.attention._lemma4_parts")


def test_side_names_import():
    """Test that every dotted name in a claim's sides imports."""
    for c in all_claims():
        for side in c.sides:
            for name in side:
                ind.resolve(name)

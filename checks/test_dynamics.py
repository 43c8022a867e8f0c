"""Population dynamics beyond one step (issue 13, item 4): k steps per layer, top-down, in rounds."""

from popgrad.registry import assert_claim


def test_dynamics_first_steps_are_theorem3():
    # Theorem 3 (B.3): one step per layer of the B.3 dynamics (autograd, enumerated model D, p_hat = 1/N)
    # equals the exact engine's three one-step matrices (float64, rel <= 1e-10).
    assert_claim("dynamics.first_steps_are_theorem3")


def test_dynamics_token_coordinates():
    # Sec. 4.2, eq. (2): gradient descent on the full model's CE at position T in token coordinates equals
    # plain d x d gradient descent by autograd of induction_head_logits, at every step (float64, rel <= 1e-10).
    assert_claim("dynamics.token_coordinates")

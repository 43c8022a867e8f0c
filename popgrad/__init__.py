"""popgrad: executable checks of the population gradients in "Birth of a Transformer".

Source: Bietti, Cabannes, Bouchacourt, Jegou, Bottou, "Birth of a Transformer: A Memory
Viewpoint", NeurIPS 2023 (Lemmas 1, 2, 4, 5, Theorem 3, Appendices A-C, E).

Layout: `popgrad` holds what every path shares (embeddings, data models, claim registry,
CLI); `popgrad.theory` the symbolic and exact-expectation paths; `popgrad.numerics` the
Monte-Carlo path. In the repository these two live in the top-level folders `theory/` and
`numerics/` (the layout maps the paper); `pip install` places them inside `popgrad`.
"""

import os as _os

__version__ = "0.1.0"

# A source checkout used without installing it (a worktree, `python -m popgrad` from the root):
# theory/ and numerics/ sit beside popgrad/, so let the package find its two subpackages there.
_checkout = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
if all(_os.path.isfile(_os.path.join(_checkout, name)) for name in
       ("pyproject.toml", "theory/__init__.py", "numerics/__init__.py")):
    __path__.append(_checkout)

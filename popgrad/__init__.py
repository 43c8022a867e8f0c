"""popgrad: executable checks of the population gradients in "Birth of a Transformer".

Source: Bietti, Cabannes, Bouchacourt, Jegou, Bottou, "Birth of a Transformer: A Memory
Viewpoint", NeurIPS 2023 (Lemmas 1, 2, 4, 5, Theorem 3, Appendices A-C, E).

Layout: `popgrad` holds what every path shares (embeddings, data models, claim registry,
CLI); `theory` the symbolic and exact-expectation paths; `numerics` the Monte-Carlo path.
"""

__version__ = "0.1.0"

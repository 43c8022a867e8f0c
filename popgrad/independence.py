"""Which popgrad code each side of a claim reaches, so that a test can show the two sides share only data.

`reach(names)` walks, from the dotted names of one side (`Claim.sides`), every popgrad function
or class the source refers to (calls, and functions passed as values), recursively, resolving
names through the function's module globals and its local imports. The walk is static: a method
called on an object (`stats.centered_means()`) is not followed, a class named in the source is.
`shared(claim)` is what the two sides' reaches have in common outside `ALLOWED`.

The written rule is in paper_refs/README.md ("How the two sides of a claim stay independent").
"""

from __future__ import annotations

import ast
import importlib
import inspect
import textwrap
import types

# Data and embeddings: what the two sides of a claim are allowed to share.
ALLOWED_MODULES = {
    "popgrad.data": "the data models (A-D) and their enumeration",
    "popgrad.embeddings": "the embeddings",
    "popgrad.numerics.samplers": "sampled data (model C, model D)",
    "popgrad.numerics.ckernel": "sampled data (the compiled positions loop of the model-C sampler)",
    "popgrad.corpus": "the corpus counts behind model C",
    "popgrad.errors": "input validation (raises, never computes)",
    "popgrad.device": "device / dtype resolution",
    "popgrad.tolerances": "tolerances and the error measure of the comparison itself",
    "popgrad.numerics.transformer.FrozenTables": "the frozen embeddings as row tables (w_E, p_t, Phi_1 w_E, ...)",
}
# Input validation and defaults that only check shapes and convert the data to tensors.
ALLOWED_FUNCTIONS = {
    "popgrad.theory.attention._tensor": "validates and converts an input array",
    "popgrad.theory.attention._shape": "shape check",
    "popgrad.theory.attention._square": "validates a (d, d) matrix",
    "popgrad.theory.attention._weighted_set": "validates the weighted sequence set (the data)",
    "popgrad.theory.attention._keys_query": "validates Z and the query (defaults Z = X, query = x_T)",
    "popgrad.theory.attention._lemma5_inputs": "validates Lemma 5's inputs",
    "popgrad.theory.lemma1._check_inputs": "type checks of the embeddings and the table",
    "popgrad.theory.lemma1._check_W": "shape check",
    "popgrad.theory.lemma1._joint": "the table p(z, y) as a tensor (the data)",
    "popgrad.theory.lemma2._check_inputs": "validates the mixture, W and W_U",
    "popgrad.theory.lemma2._weights": "the mixture's weights as a tensor (the data)",
    "popgrad.theory.example_b1._check_emb": "type check of the embeddings",
    "popgrad.theory.theorem3._check": "validates model, embeddings and eta",
    "popgrad.numerics.theorem3_mc._check": "validates shapes and eta",
    "popgrad.numerics.theorem3_mc.enumerated": "model D's enumeration as tensors (the data)",
    "popgrad.numerics.theorem3_mc.sampled": "model D samples as tensors (the data)",
    "popgrad.numerics.transformer.logit_scale": "the attention-logit factor c (1 or 1/sqrt(d)), a constant of the setting",
}


def resolve(dotted: str):
    """Import a dotted name: the longest importable module prefix, then attributes."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for p in parts[i:]:
            obj = getattr(obj, p)
        return obj
    raise ImportError(dotted)


def qualname(obj) -> str:
    return f"{obj.__module__}.{obj.__qualname__}"


def _is_popgrad(obj) -> bool:
    mod = getattr(obj, "__module__", None) or ""
    return (isinstance(obj, (types.FunctionType, type))) and mod.startswith("popgrad")


def _namespace(fn, tree) -> dict:
    ns = dict(getattr(fn, "__globals__", {}))
    for node in ast.walk(tree):                              # local imports inside the function
        if isinstance(node, ast.Import):
            for a in node.names:
                try:
                    mod = importlib.import_module(a.name)
                except ImportError:
                    continue
                ns[a.asname or a.name.split(".")[0]] = mod if a.asname else importlib.import_module(a.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                try:
                    ns[a.asname or a.name] = resolve(f"{node.module}.{a.name}")
                except (ImportError, AttributeError):
                    pass
    return ns


def _chain(node):
    """['a', 'b', 'c'] for the expression a.b.c, else None."""
    names = []
    while isinstance(node, ast.Attribute):
        names.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return [node.id] + names[::-1]
    return None


def references(obj) -> set:
    """The popgrad functions and classes that obj's source refers to (one level)."""
    if isinstance(obj, type):                                # a class: its methods
        out = set()
        for v in vars(obj).values():
            f = v.__func__ if isinstance(v, (staticmethod, classmethod)) else v
            if isinstance(f, types.FunctionType):
                out.add(f)
            elif isinstance(f, property) and f.fget is not None:
                out.add(f.fget)
        return out
    fn = inspect.unwrap(obj)
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError, SyntaxError):
        return set()
    ns = _namespace(fn, tree)
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Name, ast.Attribute)) and isinstance(getattr(node, "ctx", None), ast.Load):
            chain = _chain(node)
            if not chain or chain[0] not in ns:
                continue
            target = ns[chain[0]]
            try:
                for a in chain[1:]:
                    target = getattr(target, a)
            except AttributeError:
                continue
            if _is_popgrad(target) and target is not fn:
                out.add(target)
    return out


def reach(names) -> set:
    """Qualified names of every popgrad function/class reachable from the dotted names."""
    seen, stack = {}, [resolve(n) for n in names]
    while stack:
        obj = stack.pop()
        key = qualname(obj)
        if key in seen:
            continue
        seen[key] = obj
        stack.extend(references(obj))
    return set(seen)


def allowed(name: str) -> bool:
    return (name in ALLOWED_FUNCTIONS or name in ALLOWED_MODULES
            or any(name.startswith(m + ".") for m in ALLOWED_MODULES))


def shared(claim) -> set:
    """Code both sides of a claim reach, outside the data / embeddings / validation allow-list."""
    a, b = claim.sides
    return {n for n in reach(a) & reach(b) if not allowed(n)}

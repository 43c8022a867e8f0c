"""The choices the numerics accept, without torch: the CLI builds its parsers from these names,
so a bad argument is refused before torch loads."""

# population dynamics (numerics/dynamics.py)
SCHEDULES = ("consecutive", "alternating", "joint")
LOSSES = ("full", "b3")
PHAT = ("uniform", "true")
POPULATIONS = ("mc", "fixed", "enumerated")

# capacity of associative memories (numerics/capacity_search.py)
MAPS = ("injective", "mod2")
QUERIES = 5000      # largest number of (memory, z) pairs read at one N before the recall is sampled
RESOLUTION = 0.005  # the searches stop when hi - lo <= max(1, RESOLUTION * lo)

"""One call's run: the pipeline's steps, the engine's loop, its options, the fallback.

- :mod:`.options`: defaults and precedence, decided once.
- :mod:`.pipeline`: a :class:`~jupyter_par.planning.plan.Plan` in, the combined value out.
- :mod:`.engine`: the loop that hands partitions to a backend and collects outcomes.
- :mod:`.fallback`: is moving the data to workers worth it (the in-kernel fallback)?
"""

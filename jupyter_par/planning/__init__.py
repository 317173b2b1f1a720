"""Every way of cutting an input into partitions and putting results back together.

- :mod:`.plan`: :class:`~.plan.Plan`, what one call does (partitions, work, combine).
- :mod:`.builders`: plans for pandas' own calls (apply, map, groupby, partitions).
- :mod:`.partition`: cutting rows, columns, sequences and chunked readers; combining.
- :mod:`.groups`: groupby split and exact assembly through pandas.
- :mod:`.operations`: the picklable work done on one partition.
- :mod:`.sources`: inputs that are not one frame (files, readers, task lists).
"""

"""What travels between the kernel and workers, and how.

- :mod:`.shipping`: code and names by value with dill; the errors for what cannot travel.
- :mod:`.pickling`: picklers for notebook classes, open files, large globals.
- :mod:`.shared_memory`: numeric and text data through ``/dev/shm`` segments.
- :mod:`.shared_objects`: ``shared=`` objects, sent once per worker (``jp.shared``).
- :mod:`.outcome`: a partition's outcome on its way back.
"""

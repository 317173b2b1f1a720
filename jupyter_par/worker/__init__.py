"""What runs inside a worker, whatever the backend: the task, its output, its displays.

- :mod:`.task`: one operation on one partition, turned into a picklable outcome.
- :mod:`.output`: prints and logging records sent while the task runs.
- :mod:`.display`: ``display()`` recorded as MIME bundles.
- :mod:`.allocator`: keep large freed blocks in the worker's heap while it works.
"""

"""Progress records, the one front-end chooser, the text renderer, and the timings.

- :mod:`.records`: plain progress records and the tracker that builds them.
- :mod:`.chooser`: which front end draws a run (the one place that decides).
- :mod:`.text`: tqdm bars on a terminal, plain lines elsewhere.
- :mod:`.timings`: where a run's time went, and the speedup that predicts.
"""

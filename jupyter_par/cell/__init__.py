"""The ``%%parallel`` cell: compile the body, check it means what it means serially, run it.

- :mod:`.run`: split TARGET, build the plan, execute it, write the result back.
- :mod:`.code`: the body compiled with the cell's line numbers; the names it reads and binds.
- :mod:`.meaning`: the cross-row check (a body whose row needs other rows is refused);
  :mod:`.expressions` evaluates the body's expressions for it, and
  :mod:`.cross_row_words` lists the pandas / numpy words that mean other rows.
- :mod:`.row_count`: row-level progress from inside pandas calls in the body.
"""

"""One pipeline under three adapters: the API, the magic and the panel agree, backends are
known by capability, and a backend written outside the package works in all three."""

from __future__ import annotations

import textwrap
import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest

import jupyter_par as jp
from jupyter_par import backends
from jupyter_par.backends import Backend, Event, Finished, Task, run_task

RUN = {"jobs": 2, "partitions": 4, "progress": False, "inline_fallback": False}


def row_score(row):
    return row["a"] * 2 + row["b"]


def group_spread(g):
    return g["a"].max() - g["a"].min()


def column_range(col):
    return col.max() - col.min()


FRAME = pd.DataFrame({
    "a": np.arange(60) % 17, "b": np.linspace(0, 1, 60),
    "g": pd.Categorical(np.arange(60) % 3, categories=[0, 1, 2]).rename_categories(list("xyz")),
})


def through_magic(shell, mode: str, backend: str) -> Any:
    frame = FRAME[["a", "b"]] if mode == "columns" else FRAME
    shell.user_ns.update(df=frame.copy(), row_score=row_score, group_spread=group_spread,
                         column_range=column_range)
    flags = f"--jobs 2 --partitions 4 --no-progress --backend {backend}"
    bodies = {
        "rows": ("", "df.apply(row_score, axis=1)"),
        "groups": ("--by g", "df.groupby('g', observed=True).apply(group_spread)"),
        "columns": ("--axis columns", "df.apply(column_range)"),
    }
    extra, body = bodies[mode]
    return shell.run_cell_magic("parallel", f"{flags} {extra} df", textwrap.dedent(body))


def through_api(mode: str, backend: str) -> Any:
    if mode == "rows":
        return jp.apply(FRAME, row_score, axis=1, backend=backend, **RUN)
    if mode == "groups":
        return jp.groupby_apply(FRAME, "g", group_spread, observed=True, backend=backend, **RUN)
    return jp.apply(FRAME[["a", "b"]], column_range, backend=backend, **RUN)


def through_panel(mode: str, backend: str) -> Any:
    frame = FRAME if mode != "columns" else FRAME[["a", "b"]]
    namespace = {"df": frame, "func": {"rows": row_score, "groups": group_spread,
                                       "columns": column_range}[mode]}
    panel = jp.Panel(namespace, frontend="ipywidgets")
    panel.func_picker.value = "func"
    panel.mode_picker.value = mode
    if mode == "groups":
        panel.by_picker.value = "g"
    panel.backend_picker.value = backend
    panel.jobs_slider.value = 2
    panel.run()
    return panel.wait(60)


def serial(mode: str) -> Any:
    if mode == "rows":
        return FRAME.apply(row_score, axis=1)
    if mode == "groups":
        return FRAME.groupby("g", observed=True).apply(group_spread)
    return FRAME[["a", "b"]].apply(column_range)


@pytest.mark.parametrize("mode", ["rows", "groups", "columns"])
@pytest.mark.parametrize("backend", ["processes", "threads"])
def test_api_magic_and_panel_give_the_serial_result_and_warnings(shell, mode, backend):
    def warned(call):
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            value = call()
        return value, sorted({(w.category.__name__, str(w.message)) for w in seen})

    expected, expected_warnings = warned(lambda: serial(mode))
    for call in (lambda: through_api(mode, backend),
                 lambda: through_magic(shell, mode, backend),
                 lambda: through_panel(mode, backend)):
        result, seen = warned(call)
        pd.testing.assert_series_equal(result, expected)
        assert seen == expected_warnings


# -- a backend written outside the package, from public names alone -------------------------
class ListedBackend(Backend):
    """Runs each task in the caller and lists the task ids it ran."""

    name = "listed"
    in_caller = True
    uses_threads = True
    ran: list[int] = []  # shared on purpose: the test reads it

    def __init__(self, jobs: int, **options: Any) -> None:
        super().__init__(jobs, **options)
        self._pending: list[Task] = []

    @property
    def workers(self) -> list[str]:
        return ["here"]

    def idle_workers(self) -> int:
        return 0 if self._pending else 1

    def submit(self, task: Task) -> str:
        self._pending.append(task)
        return "here"

    def poll(self, timeout: float) -> list[Event]:
        events: list[Event] = []
        while self._pending:
            task = self._pending.pop()
            ListedBackend.ran.append(task.task_id)
            events.append(Finished("here", run_task(task.task_id, task.op, task.data),
                                   task.run_id))
        return events


@pytest.fixture
def listed():
    jp.register_backend("listed", lambda: ListedBackend)
    ListedBackend.ran.clear()
    yield ListedBackend
    backends.shutdown("listed")
    del backends.BACKENDS["listed"]


@pytest.mark.parametrize("mode", ["rows", "groups", "columns"])
def test_an_outside_backend_works_in_the_api_the_magic_and_the_panel(shell, listed, mode):
    expected = serial(mode)
    for run in (through_api, lambda m, b: through_magic(shell, m, b), through_panel):
        listed.ran.clear()
        pd.testing.assert_series_equal(run(mode, "listed"), expected)
        assert sorted(listed.ran) == list(range(len(listed.ran))) and listed.ran


def test_the_magic_and_the_panel_list_backends_from_the_registry(shell, listed):
    assert "listed" in jp.Panel({"df": FRAME}, frontend="ipywidgets").backend_picker.options
    from IPython.core.error import UsageError

    # IPython's usage error: a one-line message under the cell, no traceback.
    shell.user_ns["df"] = FRAME
    with pytest.raises(UsageError, match=r"^backend must be one of .*listed.*, got 'nowhere'$"):
        shell.run_cell_magic("parallel", "--backend nowhere df", "df\n")

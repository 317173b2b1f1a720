"""Which backend runs, and why: decided once, by run.backend_choice.choose_backend (issue 22)."""

from __future__ import annotations

import os
import warnings
from dataclasses import replace

import pandas as pd
import pytest

import jupyter_par as jp
from jupyter_par.run import backend_choice
from jupyter_par.run import fallback as cost
from jupyter_par.run.backend_choice import NESTED, ONE_JOB, TOO_SMALL, choose_backend
from jupyter_par.run.options import resolve


def _never(_: object = None) -> str | None:
    msg = "the fallback was asked where it cannot apply"
    raise AssertionError(msg)


def test_the_backend_asked_for_runs_with_no_reason():
    choice = resolve(jobs=2, backend="threads").chosen
    assert (choice.asked, choice.name, choice.jobs, choice.reason) == ("threads", "threads", 2,
                                                                       None)
    assert choice.in_kernel is None


def test_one_job_runs_in_the_kernel_and_says_so():
    options = resolve(jobs=1)
    assert options.backend == "inline"
    assert (options.chosen.asked, options.chosen.reason) == ("processes", ONE_JOB)
    assert options.chosen.in_kernel == "ran in the kernel"
    # A choice made for a reason stands: the fallback is not asked again.
    assert choose_backend(options, _never) is options.chosen


def test_a_call_nested_in_a_task_runs_in_place_without_bars():
    seen = jp.map([0, 1], lambda _: (resolve(jobs=4).chosen.reason, resolve().progress),
                  jobs=2, backend="threads", progress=False)
    assert seen == [(NESTED, False), (NESTED, False)]


def test_the_fallback_is_asked_only_where_it_may_apply():
    processes = resolve(jobs=2, backend="processes")
    choice = choose_backend(processes, lambda _: "moving costs more than the work")
    assert (choice.asked, choice.name, choice.reason) == ("processes", "inline", TOO_SMALL)
    assert choice.in_kernel == choice.detail == "moving costs more than the work"
    assert choose_backend(processes, lambda _: None) == processes.chosen
    assert choose_backend(replace(processes, inline_fallback=False), _never) == processes.chosen
    threads = resolve(jobs=2, backend="threads")  # threads have no local fallback
    assert choose_backend(threads, _never) == threads.chosen


def test_a_run_the_fallback_keeps_in_the_kernel_warns_and_says_why(
        monkeypatch: pytest.MonkeyPatch):
    reason = "sum(len): moving 2 MB costs more than the work; ran in the kernel"
    monkeypatch.setattr(cost, "worth_a_sample", lambda *args: True)
    monkeypatch.setattr(cost.Sample, "_verdict", lambda *args: reason)
    values = pd.Series(range(40))
    with pytest.warns(jp.InlineFallbackWarning, match="^sum\\(len\\): moving") as caught:
        result = jp.map(values, lambda v: (v, os.getpid()), jobs=2, progress=False)
    assert len([w for w in caught if w.category is jp.InlineFallbackWarning]) == 1
    assert {pid for _, pid in result} == {os.getpid()}  # it did run here
    run = jp.last_run()
    assert (run.backend, run.explain, run.with_workers) == ("inline", reason, False)


def test_without_a_verdict_the_run_goes_to_the_workers(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(cost, "worth_a_sample", lambda *args: True)
    monkeypatch.setattr(cost.Sample, "_verdict", lambda *args: None)
    with warnings.catch_warnings():
        warnings.simplefilter("error", jp.InlineFallbackWarning)
        pids = jp.map(pd.Series(range(80)), lambda v: os.getpid(), jobs=2, partitions=2,
                      progress=False)
    # The sample's pieces (the first rows, run once in the kernel) are kept; the second
    # partition went to the workers.
    assert os.getpid() not in set(pids.iloc[40:])
    assert jp.last_run().backend == "processes"


def test_options_not_from_resolve_are_refused():
    options = replace(resolve(jobs=2), runs_on=None)
    with pytest.raises(TypeError, match="resolve"):
        options.chosen  # noqa: B018 - the property raises
    assert backend_choice.choose_backend(options).asked == options.backend

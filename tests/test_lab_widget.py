"""LabProgressWidget without a browser: the trait contract, versions, and the cancel message."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import comm
import pytest

from jupyter_par._version import __version__
from jupyter_par.widgets import lab_widget
from jupyter_par.widgets.lab_widget import LabProgressWidget, empty_overall

LABEXT = Path(__file__).resolve().parents[1] / "labextension"


class RecordingComm(comm.DummyComm):  # the Layout child gets one too; use ``widget.comm``
    """A comm that keeps what the widget would send to the front end."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []
        super().__init__(*args, **kwargs)

    def publish_msg(self, msg_type: str, data: Any = None, *args: Any, **kwargs: Any) -> None:
        self.sent.append((msg_type, data or {}))


@pytest.fixture
def recording_comm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(comm, "create_comm", RecordingComm)


def worker(i: int, **overrides: Any) -> dict[str, Any]:
    record = {
        "id": f"w{i}",
        "state": "busy",
        "done": 10 * i,
        "assigned": 100,
        "fraction": 0.1 * i,
        "rate": 12.5,
        "partition": i,
        "error": None,
    }
    return {**record, **overrides}


def custom_msg(content: Any) -> dict[str, Any]:
    """The comm message ipywidgets receives when a view calls ``model.send(content)``."""
    return {"content": {"data": {"method": "custom", "content": content}}, "buffers": []}


def ts_interface_fields(name: str) -> set[str]:
    source = (LABEXT / "src" / "tokens.ts").read_text()
    body = re.search(r"export interface " + name + r" \{(.*?)\n\}", source, re.S)
    assert body, f"{name} not found in tokens.ts"
    return set(re.findall(r"^\s+(\w+):", body.group(1), re.M))


def test_only_the_view_is_the_extensions() -> None:
    # A front end without the extension still creates the standard model (no error for a
    # widget it never draws); only the view needs the extension.
    state = LabProgressWidget().get_state()
    assert (state["_model_module"], state["_model_name"]) == (
        "@jupyter-widgets/base", "DOMWidgetModel")
    assert (state["_view_module"], state["_view_name"]) == ("jupyter-par", "ProgressView")


def test_versions_agree() -> None:
    package = json.loads((LABEXT / "package.json").read_text())
    state = LabProgressWidget().get_state()
    assert package["name"] == state["_view_module"]
    assert package["version"] == __version__
    assert state["_view_module_version"] == __version__


def test_defaults() -> None:
    w = LabProgressWidget()
    assert w.workers == []
    assert w.overall == empty_overall()
    assert w.overall["state"] == "running"


def test_partial_overall_is_completed() -> None:
    w = LabProgressWidget(overall={"label": "score", "total": 800})
    assert w.overall["label"] == "score"
    assert w.overall["total"] == 800
    assert set(w.overall) == set(empty_overall())


def test_record_keys_match_the_front_end() -> None:
    assert ts_interface_fields("IWorkerRecord") == set(lab_widget.WORKER_KEYS)
    assert ts_interface_fields("IOverallRecord") == set(empty_overall())


@pytest.mark.usefixtures("recording_comm")
def test_traits_reach_the_front_end() -> None:
    w = LabProgressWidget(workers=[worker(0)])
    c = w.comm
    assert isinstance(c, RecordingComm)
    opened = c.sent[0]
    assert opened[0] == "comm_open"
    assert opened[1]["state"]["workers"] == [worker(0)]
    assert opened[1]["state"]["overall"]["state"] == "running"

    c.sent.clear()
    with w.hold_sync():
        w.workers = [worker(0, state="done", done=100), worker(1)]
        w.overall = {**w.overall, "done": 110, "percent": 55.0}
    updates = [data for kind, data in c.sent if kind == "comm_msg" and data["method"] == "update"]
    assert len(updates) == 1, "hold_sync should send both traits in one message"
    assert updates[0]["state"]["workers"][0]["state"] == "done"
    assert updates[0]["state"]["overall"]["percent"] == 55.0


@pytest.mark.usefixtures("recording_comm")
def test_cancel_message_calls_back() -> None:
    w = LabProgressWidget()
    calls: list[str] = []
    w.on_cancel(lambda: calls.append("cancel"))
    w.comm.handle_msg(custom_msg({"event": "cancel"}))
    assert calls == ["cancel"]


def test_other_messages_are_ignored() -> None:
    w = LabProgressWidget()
    calls: list[str] = []
    w.on_cancel(lambda: calls.append("cancel"))
    w._handle_msg(custom_msg({"event": "something-else"}))
    w._handle_msg(custom_msg("cancel"))
    assert calls == []


def test_cancel_callback_can_be_removed() -> None:
    w = LabProgressWidget()
    calls: list[str] = []

    def callback() -> None:
        calls.append("cancel")

    w.on_cancel(callback)
    w.on_cancel(callback, remove=True)
    w._handle_msg(custom_msg({"event": "cancel"}))
    assert calls == []

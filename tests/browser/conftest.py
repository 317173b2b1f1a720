"""A real JupyterLab in headless Chromium, for tests marked ``browser``.

Fixtures
--------
lab_server
    One ``jupyter lab`` per session on 127.0.0.1 (free port, token, temp root and temp
    Jupyter config/runtime/settings/workspace dirs, settings that keep the UI still). It serves
    the lab extension built in this checkout (``jupyter_par/labextension``) when there is one,
    else the installed one. Started in its own session; its process group and any kernel it
    left are killed at teardown.
lab_page
    A fresh Chromium page with a 1280x1000 viewport.
open_notebook
    ``open_notebook(name, cells_or_path) -> Page``: write a notebook into the server's root
    (or copy an existing ``.ipynb``), open it and wait until its kernel is idle.
run_notebook
    ``run_notebook(name, cells_or_path) -> Page``: the same, then run all cells. The
    end-to-end test with the real engine needs only this::

        def test_engine_progress(run_notebook):
            page = run_notebook("e2e.ipynb", Path("demo_notebooks/quickstart.ipynb"))
            page.locator(".jp-par-overall[data-state=done]").wait_for(timeout=60_000)

Screenshots go to ``test-artifacts/screenshots/`` (see `screenshot_path`).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
BUILT_EXTENSION = REPO / "jupyter_par" / "labextension"

# Flags that keep Chromium from reaching out or needing a GPU/sandbox on CI machines.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# User settings that remove sources of flakiness: the "Select Kernel" dialog, cells detached
# while off-screen, and news/update toasts that cover the status bar.
USER_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker": {
        "autoStartDefaultKernel": True,
        "windowingMode": "none",
    },
    "@jupyterlab/apputils-extension/notification": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}

SERVER_START_TIMEOUT = 90.0
KERNEL_READY_TIMEOUT_MS = 90_000


@pytest.fixture
def screenshot_path() -> Callable[[str], Path]:
    """``screenshot_path(name)``: where a screenshot called ``name`` goes (folder created)."""

    def path(name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        return SCREENSHOTS / name

    return path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LabServer:
    """A running ``jupyter lab``: where it listens and where its files live."""

    url: str
    token: str
    root: Path
    process: subprocess.Popen[bytes]
    log: Path
    #: Where a notebook opens: JupyterLab's ``lab/tree`` or Notebook 7's ``notebooks``.
    notebook_path: str = "lab/tree"

    def api(self, method: str, path: str) -> Any:
        """Call the server's REST API; returns the decoded JSON body (or None)."""
        request = urllib.request.Request(
            f"{self.url}{path}",
            method=method,
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def lab_url(self, notebook: str) -> str:
        reset = "&reset" if self.notebook_path == "lab/tree" else ""
        return f"{self.url}/{self.notebook_path}/{notebook}?token={self.token}{reset}"

    def shutdown_kernels(self) -> None:
        """Stop every kernel so one test's kernel never outlives it."""
        with contextlib.suppress(OSError, urllib.error.URLError):
            for kernel in self.api("GET", "/api/kernels") or []:
                with contextlib.suppress(OSError, urllib.error.URLError):
                    self.api("DELETE", f"/api/kernels/{kernel['id']}")

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


def _write_user_settings(settings_dir: Path) -> None:
    for plugin, values in USER_SETTINGS.items():
        package, _, name = plugin.rpartition("/")
        target = settings_dir / package / f"{name}.jupyterlab-settings"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values))


def _extension_path(data_dir: Path) -> None:
    """Serve this checkout's build of the extension ahead of any installed copy."""
    from jupyter_core.paths import jupyter_path

    if (BUILT_EXTENSION / "package.json").exists():
        labextensions = data_dir / "labextensions"
        labextensions.mkdir(parents=True, exist_ok=True)
        (labextensions / "jupyter-par").symlink_to(BUILT_EXTENSION, target_is_directory=True)
    elif not any(
        (Path(p) / "jupyter-par" / "package.json").exists() for p in jupyter_path("labextensions")
    ):
        pytest.fail(
            "the jupyter-par lab extension is neither built nor installed: run "
            "`pip install -e .` or `cd labextension && jlpm install && jlpm build`"
        )


def _kill_tree(process: subprocess.Popen[bytes], descendants: Sequence[Any]) -> None:
    """Stop the server's process group, then anything it started in other sessions."""
    import psutil

    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    # Kernels are started in their own sessions, so the group kill above misses them.
    for child in descendants:
        with contextlib.suppress(psutil.Error):
            child.kill()
    psutil.wait_procs(descendants, timeout=10)


@contextlib.contextmanager
def _running_lab(
    base: Path, disabled: Sequence[str] = (), app: str = "jupyterlab"
) -> Iterator[LabServer]:
    """A ``jupyter lab`` (or, with ``app="notebook"``, a Notebook 7) in ``base``, with the
    lab extensions named in ``disabled`` off (what ``jupyter labextension disable NAME``
    writes, in the temp config dir)."""
    import psutil

    dirs = {
        name: base / name
        for name in ("root", "config", "runtime", "settings", "workspaces", "data")
    }
    for path in dirs.values():
        path.mkdir()
    _write_user_settings(dirs["settings"])
    _extension_path(dirs["data"])
    if disabled:
        labconfig = dirs["config"] / "labconfig"
        labconfig.mkdir()
        (labconfig / "page_config.json").write_text(
            json.dumps({"disabledExtensions": {name: True for name in disabled}}))

    token = secrets.token_hex(16)
    port = _free_port()
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(dirs["config"]),
        "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]),
        "JUPYTERLAB_SETTINGS_DIR": str(dirs["settings"]),
        "JUPYTERLAB_WORKSPACES_DIR": str(dirs["workspaces"]),
        "JUPYTER_PATH": os.pathsep.join(
            p for p in (str(dirs["data"]), os.environ.get("JUPYTER_PATH", "")) if p
        ),
        # Kernels import jupyter_par from this checkout even without an install.
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p
        ),
    }
    log = base / "server.log"
    app_class = "LabApp" if app == "jupyterlab" else "JupyterNotebookApp"
    command = [
        sys.executable,
        "-m",
        app,
        "--no-browser",
        "--allow-root",  # CI containers run as root; the server refuses to start otherwise
        "--ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={dirs['root']}",
        # lets tests call window.jupyterapp.commands
        f"--{app_class}.expose_app_in_browser=True",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = LabServer(f"http://127.0.0.1:{port}", token, dirs["root"], process, log,
                       "lab/tree" if app == "jupyterlab" else "notebooks")

    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while True:
        if process.poll() is not None:
            pytest.fail(f"jupyter lab exited with {process.returncode}:\n{server.log_tail()}")
        with contextlib.suppress(OSError, urllib.error.URLError, ValueError):
            server.api("GET", "/api/status")
            break
        if time.monotonic() > deadline:
            _kill_tree(process, [])
            pytest.fail(f"jupyter lab did not answer in {SERVER_START_TIMEOUT:.0f} s")
        time.sleep(0.25)

    try:
        yield server
    finally:
        server.shutdown_kernels()
        try:
            descendants = psutil.Process(process.pid).children(recursive=True)
        except psutil.Error:
            descendants = []
        _kill_tree(process, descendants)


@pytest.fixture(scope="session")
def lab_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    with _running_lab(tmp_path_factory.mktemp("lab")) as server:
        yield server


@pytest.fixture(scope="session")
def notebook7_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    """A Notebook 7 server (the notebook package's own front end, same extensions)."""
    pytest.importorskip("notebook", minversion="7", reason="Notebook 7 is not installed")
    with _running_lab(tmp_path_factory.mktemp("nb7"), app="notebook") as server:
        yield server


@pytest.fixture(scope="session")
def lab_server_without_extension(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LabServer]:
    """A JupyterLab where the jupyter-par extension is installed but disabled."""
    with _running_lab(tmp_path_factory.mktemp("lab-disabled"), disabled=["jupyter-par"]) as server:
        yield server


@pytest.fixture(scope="session")
def chromium_browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install playwright)")
    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            # Chromium starts its GPU, network and storage helper processes a moment after
            # launch; open one page so they exist before the first test counts its children
            # (tests/conftest.py fails a test that leaves new child processes behind).
            warm = browser.new_context()
            warm.new_page().goto("about:blank")
            warm.close()
            yield browser
        finally:
            browser.close()
    finally:
        # Worker processes forked after this fixture started hold a copy of the pipe to
        # Playwright's driver, which then never sees it close and stop() waits forever:
        # stop the warm pools first.
        import jupyter_par

        jupyter_par.shutdown()
        playwright.stop()


#: An uncaught error Notebook 7.6's own bundle raises while loading settings, with or
#: without jupyter_par: (message, where it is raised).
NOTEBOOK7_OWN_ERROR = ("reading 'schema')", "/static/notebook/notebook_core.")


@contextlib.contextmanager
def _page(browser: Browser, server: LabServer, ignore: tuple[str, str] | None = None
          ) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    errors: list[str] = []

    def page_error(error: Any) -> None:
        if ignore and ignore[0] in str(error) and ignore[1] in (error.stack or ""):
            return
        errors.append(str(error))

    page.on("pageerror", page_error)
    # Errors the page logs (a failing signal handler in a widget model, say) are caught by
    # Backbone or Lumino and never reach "pageerror": count them too.
    page.on("console", lambda msg: errors.append(f"console: {msg.text}")
            if msg.type == "error" and not _expected_console_error(msg.text) else None)
    try:
        yield page
    finally:
        context.close()
        server.shutdown_kernels()
    # Uncaught exceptions in the page are bugs in the front end, whatever the test checked.
    assert not errors, f"errors in the page: {errors}"


@pytest.fixture
def lab_page(chromium_browser: Browser, lab_server: LabServer) -> Iterator[Page]:
    with _page(chromium_browser, lab_server) as page:
        yield page


#: Console errors JupyterLab itself logs on this setup, unrelated to jupyter_par.
_EXPECTED_CONSOLE_ERRORS: tuple[str, ...] = ()


def _expected_console_error(text: str) -> bool:
    return any(pattern in text for pattern in _EXPECTED_CONSOLE_ERRORS)


def notebook_json(cells: Sequence[str]) -> dict[str, Any]:
    """A notebook of code cells with the default Python kernel."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    return nb


def wait_for_kernel_idle(page: Page) -> None:
    """Wait until the notebook has a kernel and it is idle.

    The execution indicator reads idle while the toolbar still says "No Kernel"; running
    cells then would kill the starting kernel, so both are checked.
    """
    page.locator(".jp-NotebookPanel .jp-Notebook").first.wait_for(timeout=KERNEL_READY_TIMEOUT_MS)
    page.wait_for_function(
        """() => {
            const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
            if (!panel) return false;
            const name = panel.querySelector('.jp-Toolbar-kernelName');
            const status = panel.querySelector('.jp-Notebook-ExecutionIndicator');
            const kernel = name ? name.textContent.trim() : '';
            // The session's own kernel connection too: Notebook 7 can show its toolbar
            // idle before the connection is up.
            const widget = window.jupyterapp && window.jupyterapp.shell.currentWidget;
            const session = widget && widget.sessionContext && widget.sessionContext.session;
            const conn = session && session.kernel;
            const connected = !window.jupyterapp
                || (!!conn && conn.connectionStatus === 'connected' && conn.status === 'idle');
            return kernel !== '' && kernel !== 'No Kernel' && connected
                && !!status && status.getAttribute('data-status') === 'idle';
        }""",
        timeout=KERNEL_READY_TIMEOUT_MS,
    )


NotebookSource = Sequence[str] | Path


def open_in(server: LabServer, page: Page, name: str, source: NotebookSource) -> Page:
    """Write notebook ``name`` into ``server``'s root, open it in ``page``, wait for its kernel."""
    target = server.root / name
    if isinstance(source, Path):
        shutil.copyfile(source, target)
    else:
        target.write_text(json.dumps(notebook_json(source)))
    page.goto(server.lab_url(name))
    wait_for_kernel_idle(page)
    return page


@pytest.fixture
def open_notebook(lab_server: LabServer, lab_page: Page) -> Callable[[str, NotebookSource], Page]:
    def open_(name: str, source: NotebookSource) -> Page:
        return open_in(lab_server, lab_page, name, source)

    return open_


@pytest.fixture
def open_in_notebook7(
    chromium_browser: Browser, notebook7_server: LabServer
) -> Iterator[Callable[[str, NotebookSource], Page]]:
    """``open_notebook`` in Notebook 7."""
    with _page(chromium_browser, notebook7_server, ignore=NOTEBOOK7_OWN_ERROR) as page:
        yield lambda name, source: open_in(notebook7_server, page, name, source)


@pytest.fixture
def open_without_extension(
    chromium_browser: Browser, lab_server_without_extension: LabServer
) -> Iterator[Callable[[str, NotebookSource], Page]]:
    """``open_notebook`` in a JupyterLab where the jupyter-par extension is disabled."""
    with _page(chromium_browser, lab_server_without_extension) as page:
        yield lambda name, source: open_in(lab_server_without_extension, page, name, source)


@pytest.fixture
def run_notebook(
    open_notebook: Callable[[str, NotebookSource], Page],
) -> Callable[[str, NotebookSource], Page]:
    def run(name: str, source: NotebookSource) -> Page:
        page = open_notebook(name, source)
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        return page

    return run

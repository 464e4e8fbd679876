"""A reusable harness for driving served notebooks with a real browser.

Serve a notebook with Voilà (its own kernel, smoke mode, a random token), open it in Debian's Chromium through
Playwright, and talk to ipywidgets 8 controls the way a person does: type into a number box, press keys on a
slider handle, click a button, wait for a status text. Widgets in gpsviz print a machine-readable marker
(``explorer-state: ... done``) after each redraw, which is what the tests wait for.

Example::

    from harness import serve_notebook, browser_page, wait_for_text, set_int_text, screenshot  # tests/ on sys.path

    with serve_notebook("notebooks/02_gps_ssl.ipynb") as url, browser_page() as page:
        open_notebook(page, url)
        m = wait_for_text(page, r"explorer-state: anchor=(\\d+) .* done", timeout=300)
        wait_until_executed(page)               # later cells done: the kernel is free for the widget
        set_int_text(page, "anchor #", 5)
        wait_for_text(page, r"explorer-state: anchor=5 .* done")
        screenshot(page, "explorer")

Missing Chromium / Playwright / Voilà skips the calling test with the reason, except when the environment
variable ``CI`` is set to a true value: then the test fails (a browser test must never be skipped silently in CI).
Set ``GPSVIZ_CHROMIUM`` to use another Chromium binary.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Iterator, Mapping

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"

#: Debian's Chromium; Playwright cannot download its own browsers here.
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/lib/chromium/chromium")
#: Flags that work headless as root in a container without GPU or network.
CHROMIUM_ARGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
)
#: Text a served notebook shows when a cell failed (Voilà runs with --show_tracebacks=True here).
DEFAULT_FAIL = re.compile(r"Traceback \(most recent call last\)|There was an error when executing cell"
                          r"|Kernel Error")


# ------------------------------------------------------------------------------------------------ skip or fail
def in_ci() -> bool:
    """True when the environment variable CI is set to a true value (``CI=true`` on every CI service)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def unavailable(reason: str):
    """Skip the current test with ``reason`` -- or fail it when running in CI, where a skip would hide a gap."""
    if in_ci():
        pytest.fail(f"browser test cannot run in CI: {reason}", pytrace=False)
    pytest.skip(reason)


def chromium_executable() -> str | None:
    """Path of a Chromium binary (``$GPSVIZ_CHROMIUM`` if set, else Debian's locations / PATH), or None."""
    env = os.environ.get("GPSVIZ_CHROMIUM")
    if env:                                   # an explicit choice is the only candidate
        return env if os.path.isfile(env) and os.access(env, os.X_OK) else None
    for cand in CHROMIUM_CANDIDATES:
        if os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    return shutil.which("chromium") or shutil.which("chromium-browser")


def require_browser() -> str:
    """Return the Chromium path, or skip (fail in CI) when Chromium, Playwright or Voilà is missing."""
    exe = chromium_executable()
    if exe is None:
        unavailable("Chromium is not installed (apt-get install chromium, or set GPSVIZ_CHROMIUM=/path/to/chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        unavailable("the Python package playwright is not installed (pip install playwright)")
    try:
        import voila  # noqa: F401
    except ImportError:
        unavailable("the Python package voila is not installed (pip install voila)")
    return exe


# ------------------------------------------------------------------------------------------------ the server
def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _descendants(pid: int) -> list[int]:
    """Process ids of every descendant of ``pid`` (kernels run in their own session, so not in its group)."""
    try:
        import psutil

        return [c.pid for c in psutil.Process(pid).children(recursive=True)]
    except Exception:
        return []


def _http_status(url: str, timeout: float = 5.0) -> int:
    """HTTP status of a GET without following redirects (0 when the server does not answer)."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):  # noqa: D401 - urllib hook
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(url, timeout=timeout) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)
    except (urllib.error.URLError, OSError):
        return 0


class ServedNotebook(str):
    """The URL (with token) of a served notebook; also carries ``base``, ``token``, ``log_path`` and ``process``."""

    base: str
    token: str
    log_path: Path
    process: subprocess.Popen

    def log(self) -> str:
        """The server's log so far (stdout and stderr together)."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


def _terminate(proc: subprocess.Popen, grace: float = 15.0) -> None:
    """Stop the Voilà server and every process it started (its kernels), by process id."""
    kids = _descendants(proc.pid)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)          # Voilà shuts its kernels down on SIGTERM
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    deadline = time.monotonic() + 5.0
    for pid in kids:                              # anything left over (a kernel that ignored the shutdown)
        try:
            import psutil

            p = psutil.Process(pid)
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except Exception:
            pass
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _server_env(env: Mapping[str, str] | None) -> dict[str, str]:
    """The environment of a notebook server and its kernels: smoke mode, the repository's data and numba caches
    (unless set), the repository on ``PYTHONPATH``, no ``MPLBACKEND`` (it would strip inline figures), then
    ``env``."""
    full_env = dict(os.environ)
    full_env.pop("MPLBACKEND", None)
    full_env["GPSVIZ_SMOKE"] = "1"
    full_env.setdefault("NUMBA_CACHE_DIR", str(ROOT / "data" / "numba-cache"))
    full_env.setdefault("GPSVIZ_DATA", str(ROOT / "data"))
    full_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), full_env.get("PYTHONPATH", "")) if p)
    full_env.update(env or {})
    return full_env


def _wait_until_up(url: "ServedNotebook", probe: str, server: str, name: str, timeout: float) -> None:
    """Poll ``probe`` until it answers 200; a server that exits or stays silent for ``timeout`` s raises with the
    tail of its log."""
    deadline = time.monotonic() + timeout
    while _http_status(probe, timeout=2.0) != 200:
        if url.process.poll() is not None:
            raise RuntimeError(f"{server} exited with code {url.process.returncode} before serving {name}:\n"
                               f"{url.log()[-3000:]}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{server} did not answer within {timeout:.0f} s:\n{url.log()[-3000:]}")
        time.sleep(0.25)


@contextlib.contextmanager
def serve_notebook(path: str | os.PathLike, env: Mapping[str, str] | None = None, timeout: float = 120.0,
                   cell_timeout: int = 600) -> Iterator[ServedNotebook]:
    """Serve one notebook with Voilà on 127.0.0.1 (free port, random token) and yield its URL with the token.

    Args:
        path: the notebook (relative paths are taken from the repository root).
        env: extra environment variables for the server and its kernel. Set by default: ``GPSVIZ_SMOKE=1``,
            ``NUMBA_CACHE_DIR=<repo>/data/numba-cache``, ``GPSVIZ_DATA=<repo>/data`` (unless already set),
            and ``MPLBACKEND`` is removed (an Agg backend would strip inline figures) unless given in ``env``.
        timeout: seconds to wait for the server to answer.
        cell_timeout: seconds one cell may run inside Voilà before it is reported as timed out.

    Every page load (``page.goto(url)``) starts a fresh kernel that executes the whole notebook; the server and
    all its kernels are terminated when the block exits, whatever happened inside it. Open the page with
    :func:`open_notebook` (Voilà streams the page as the cells run; ``page.goto`` would wait for all of them).
    """
    require_browser()
    nb = Path(path)
    if not nb.is_absolute():
        nb = ROOT / nb
    if not nb.is_file():
        raise FileNotFoundError(f"serve_notebook: no notebook at {nb}")
    port, token = free_port(), secrets.token_hex(16)
    full_env = _server_env(env)
    Path(full_env["NUMBA_CACHE_DIR"]).mkdir(parents=True, exist_ok=True)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log_path = ARTIFACTS / f"voila-{nb.stem}-{port}.log"
    cmd = [
        sys.executable, "-m", "voila", str(nb),
        "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1", f"--token={token}",
        "--ServerApp.port_retries=0", "--show_tracebacks=True",
        f"--VoilaExecutor.timeout={int(cell_timeout)}",
    ]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=str(nb.parent), env=full_env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    url = ServedNotebook(f"{base}/?token={token}")
    url.base, url.token, url.log_path, url.process = base, token, log_path, proc
    try:
        _wait_until_up(url, f"{base}/voila/static/voila.js", "Voilà", nb.name, timeout)   # static: no kernel
        yield url
    except BaseException:
        # pytest shows captured stderr of a failed test: the server log tells why a cell or kernel failed
        sys.stderr.write(f"\n--- Voilà log ({log_path}), last lines ---\n{url.log()[-4000:]}\n")
        raise
    finally:
        _terminate(proc)


def token_is_required(url: ServedNotebook) -> bool:
    """True when the server refuses the notebook page to a request without the token (redirect to login or 403)."""
    status = _http_status(url.base + "/", timeout=10.0)
    return status in (301, 302, 303, 307, 401, 403)


# ------------------------------------------------------------------------------------------------ the browser
@contextlib.contextmanager
def browser_page(width: int = 1400, height: int = 1000, timeout: float = 60.0):
    """A Playwright page in headless Debian Chromium (skips, or fails in CI, when it cannot start).

    Console errors of the page are collected in ``page.console_errors`` (a list of strings).
    """
    exe = require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        try:
            browser = pw.chromium.launch(executable_path=exe, headless=True, args=list(CHROMIUM_ARGS),
                                         timeout=timeout * 1000)
        except Exception as e:  # a broken browser install is the same gap as a missing one
            unavailable(f"Chromium at {exe} did not start: {str(e).splitlines()[0]}")
        try:
            context = browser.new_context(viewport={"width": width, "height": height})
            page = context.new_page()
            page.set_default_timeout(timeout * 1000)
            page.console_errors = []  # type: ignore[attr-defined]
            page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))
            page.on("pageerror", lambda e: page.console_errors.append(str(e)))
            yield page
        finally:
            browser.close()


def open_notebook(page, url: str, timeout: float = 60.0) -> None:
    """Navigate to a served notebook without waiting for the page's ``load`` event.

    Voilà streams the page while it executes the cells, so ``load`` only fires once the whole notebook has run;
    wait for the widget's marker with :func:`wait_for_text` instead.
    """
    page.goto(url, wait_until="commit", timeout=timeout * 1000)


def wait_until_executed(page, timeout: float = 300.0) -> None:
    """Wait until Voilà has executed every cell (the streamed page has finished loading).

    Voilà shows widgets as soon as their cell has run, while later cells still execute; until the end the
    kernel is busy and a widget's callbacks wait for it. Call this before interacting with a widget.
    """
    page.wait_for_load_state("load", timeout=timeout * 1000)


#: what a widget output shows in Voilà when its model was closed (e.g. a tqdm bar with ``leave=False``)
BROKEN_WIDGET = re.compile(r"Error displaying widget(: model not found)?")


def page_text(page) -> str:
    """The visible text of the whole page."""
    return page.evaluate("() => document.body ? document.body.innerText : ''")


def wait_for_text(page, regex: str | re.Pattern, timeout: float = 60.0,
                  fail_regex: str | re.Pattern | None = DEFAULT_FAIL, poll: float = 0.2) -> re.Match:
    """Wait until the page's visible text matches ``regex``; return the match.

    Raises AssertionError at once when ``fail_regex`` shows up first (a cell raised), and TimeoutError with the
    last lines of page text after ``timeout`` seconds.
    """
    pat = re.compile(regex) if isinstance(regex, str) else regex
    bad = re.compile(fail_regex) if isinstance(fail_regex, str) else fail_regex
    deadline = time.monotonic() + timeout
    text = ""
    while True:
        text = page_text(page)
        m = pat.search(text)
        if m:
            return m
        if bad is not None and bad.search(text):
            raise AssertionError(f"the page shows an error while waiting for {pat.pattern!r}:\n{text[-4000:]}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"no text matching {pat.pattern!r} after {timeout:.0f} s; page text ends with:\n"
                               f"{text[-2000:]}")
        page.wait_for_timeout(poll * 1000)


def _widget(page, kind: str, label: str | int):
    """Locator of an ipywidgets 8 control of ``kind`` (CSS class, e.g. ``widget-slider``).

    ``label``: the widget's description text (exact), a CSS selector starting with ``.`` or ``#`` (a class given
    with ``widget.add_class``), or an int = the n-th such widget on the page.
    """
    if isinstance(label, int):
        return page.locator(f".{kind}").nth(label)
    if label.startswith((".", "#")):
        return page.locator(f"{label}.{kind}, {label} .{kind}").first
    exact = re.compile(rf"^\s*{re.escape(label)}\s*$")
    return page.locator(f".{kind}").filter(has=page.locator("label.widget-label", has_text=exact)).first


def set_int_text(page, label: str | int, value: int) -> None:
    """Type ``value`` into an ``IntText``/``BoundedIntText`` (found by description/selector/index) and press Enter."""
    box = _widget(page, "widget-text", label).locator("input").first
    box.click()
    box.fill(str(int(value)))
    box.press("Enter")


def click_button(page, description: str) -> None:
    """Click the ipywidgets ``Button`` whose text is ``description``."""
    page.locator("button.jupyter-button", has_text=re.compile(rf"^\s*{re.escape(description)}\s*$")).first.click()


def press_slider(page, label: str | int, key: str = "ArrowRight", times: int = 1) -> None:
    """Focus the handle of an ipywidgets 8 slider and press ``key`` (ArrowRight/ArrowLeft/Home/End/...) ``times``.

    Each key press moves the slider one step; a slider with ``continuous_update=False`` sends its value when a
    key is released, so several presses give several updates.
    """
    handle = _widget(page, "widget-slider", label).locator(".noUi-handle").first
    handle.focus()
    for _ in range(int(times)):
        handle.press(key)


def select_dropdown(page, label: str | int, option: str) -> None:
    """Choose ``option`` (its visible text) in an ipywidgets ``Dropdown``."""
    _widget(page, "widget-dropdown", label).locator("select").first.select_option(label=option)


def wait_for_images(page, selector: str = "body", timeout: float = 30.0) -> None:
    """Wait until every ``<img>`` inside ``selector`` has loaded and decoded its current source.

    An explorer swaps its figure's source after each change; a screenshot taken between the text marker and the
    decode shows half a figure."""
    imgs = "sel => Array.from(document.querySelectorAll(sel + ' img')).filter(i => i.getAttribute('src'))"
    try:
        page.wait_for_function(f"sel => ({imgs})(sel).every(i => i.complete && i.naturalWidth > 0)",
                               arg=selector, timeout=timeout * 1000)
        page.evaluate(f"sel => Promise.all(({imgs})(sel).map(i => i.decode().catch(() => null)))", selector)
    except Exception as exc:        # a screenshot is an artefact: say so, do not fail the test over it
        print(f"images under {selector!r} still loading after {timeout:.0f} s ({type(exc).__name__})")


def screenshot(page, name: str, selector: str | None = None, full_page: bool = True) -> Path:
    """Save a PNG as ``test-artifacts/<name>.png`` (folder created) and return its path.

    ``selector``: only the first element matching this CSS selector (scrolled into view), e.g. one widget of a
    long notebook; else the whole page (``full_page``) or the viewport.
    """
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    out = ARTIFACTS / f"{name}.png"
    wait_for_images(page, selector or "body")
    if selector:
        loc = page.locator(selector).first
        loc.scroll_into_view_if_needed()
        box, deadline = None, time.monotonic() + 5.0
        while time.monotonic() < deadline:         # wait for the layout to settle (a redrawn figure changes height)
            page.wait_for_timeout(250)
            now = loc.bounding_box()
            if now == box:
                break
            box = now
        size = page.viewport_size
        if box and size and box["height"] + 40 > size["height"]:
            # Voilà scrolls an inner panel, so the part of a tall element below the viewport is never painted
            page.set_viewport_size({"width": size["width"], "height": int(box["height"]) + 80})
            page.wait_for_timeout(300)
        try:
            loc.screenshot(path=str(out))
        finally:
            if size:
                page.set_viewport_size(size)
    else:
        page.screenshot(path=str(out), full_page=full_page)
    return out


def parse_marker(text: str, prefix: str) -> dict[str, str]:
    """``"explorer-state: anchor=3 prior=hog k=8 done"`` → ``{"anchor": "3", "prior": "hog", "k": "8"}``."""
    m = re.search(rf"{re.escape(prefix)}:((?:\s+\S+=\S+)*)", text)
    if not m:
        raise ValueError(f"no {prefix!r} marker in {text[-500:]!r}")
    return dict(kv.split("=", 1) for kv in m.group(1).split())


__all__ = [
    "ARTIFACTS", "BROKEN_WIDGET", "CHROMIUM_ARGS", "DEFAULT_FAIL", "ServedNotebook", "browser_page",
    "chromium_executable", "click_button", "free_port", "in_ci", "open_notebook", "page_text", "parse_marker",
    "press_slider", "require_browser", "screenshot", "select_dropdown", "serve_notebook", "set_int_text",
    "token_is_required", "unavailable", "wait_for_images", "wait_for_text", "wait_until_executed",
]


# ------------------------------------------------------------------------------------------------ JupyterLab
#: Settings of the temporary JupyterLab user (``JUPYTERLAB_SETTINGS_DIR``): every cell stays in the page (the page
#: text holds every widget's marker), no autosave (the tested notebook in the checkout keeps no outputs), and no
#: request to the internet (news, update checks, the extension manager's PyPI listing).
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                        "checkForUpdates": False},
    "@jupyterlab/extensionmanager-extension/plugin.jupyterlab-settings": {"enabled": False},
}


@contextlib.contextmanager
def serve_lab(path: str | os.PathLike, env: Mapping[str, str] | None = None,
              timeout: float = 120.0) -> Iterator[ServedNotebook]:
    """Serve the repository with JupyterLab on 127.0.0.1 (free port, random token) and yield the URL that opens
    ``path`` in it (``/lab/tree/<notebook>?token=<token>``), with ``base``, ``token``, ``log_path``, ``process``.

    Args:
        path: the notebook, inside the repository (relative paths are taken from the repository root, which is
            the server's root folder).
        env: extra environment variables for the server and its kernels. Set by default, as for
            :func:`serve_notebook`: ``GPSVIZ_SMOKE=1``, ``NUMBA_CACHE_DIR`` and ``GPSVIZ_DATA`` (unless already
            set), ``PYTHONPATH`` with the repository, ``MPLBACKEND`` removed. ``JUPYTER_CONFIG_DIR``,
            ``JUPYTER_DATA_DIR``, ``JUPYTER_RUNTIME_DIR``, ``JUPYTERLAB_SETTINGS_DIR``,
            ``JUPYTERLAB_WORKSPACES_DIR`` and ``IPYTHONDIR`` point into a temporary folder (removed afterwards), so
            no user state leaks in or out; its lab settings are :data:`LAB_SETTINGS`. The notebook's checkpoint
            (JupyterLab makes one when it opens a file) goes there too.
        timeout: seconds to wait for the server to answer ``/api/status``.

    Unlike Voilà, JupyterLab runs nothing by itself: open the URL, then run the cells (e.g. the menu Run → Run All
    Cells). The server and every kernel it started are terminated when the block exits, whatever happened inside.
    """
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        unavailable("the Python package jupyterlab is not installed (pip install jupyterlab)")
    nb = Path(path)
    if not nb.is_absolute():
        nb = ROOT / nb
    if not nb.is_file():
        raise FileNotFoundError(f"serve_lab: no notebook at {nb}")
    try:
        rel = nb.resolve().relative_to(ROOT.resolve())
    except ValueError:
        raise ValueError(f"serve_lab: {nb} is outside the repository {ROOT}, the server's root folder; copy the "
                         f"notebook into the repository (e.g. tests/browser/notebooks/)") from None
    port, token = free_port(), secrets.token_hex(16)
    state = Path(tempfile.mkdtemp(prefix="gpsviz-lab-"))
    full_env = _server_env({})
    for var, sub in (("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_DATA_DIR", "data"),
                     ("JUPYTER_RUNTIME_DIR", "runtime"), ("JUPYTERLAB_SETTINGS_DIR", "lab-settings"),
                     ("JUPYTERLAB_WORKSPACES_DIR", "lab-workspaces"), ("IPYTHONDIR", "ipython")):
        full_env[var] = str(state / sub)
        (state / sub).mkdir(parents=True, exist_ok=True)
    full_env.update(env or {})
    for name, values in LAB_SETTINGS.items():
        f = Path(full_env["JUPYTERLAB_SETTINGS_DIR"]) / name
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(values))
    Path(full_env["NUMBA_CACHE_DIR"]).mkdir(parents=True, exist_ok=True)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log_path = ARTIFACTS / f"jupyterlab-{nb.stem}-{port}.log"
    cmd = [
        sys.executable, "-m", "jupyterlab", "--allow-root", "--no-browser", "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--ServerApp.token={token}",
        f"--ServerApp.root_dir={ROOT}", "--LabApp.news_url=None", "--ServerApp.open_browser=False",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        f"--FileCheckpoints.checkpoint_dir={state / 'checkpoints'}",      # not .ipynb_checkpoints/ in the checkout
    ]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=str(ROOT), env=full_env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    url = ServedNotebook(f"{base}/lab/tree/{urllib.parse.quote(rel.as_posix())}?token={token}")
    url.base, url.token, url.log_path, url.process = base, token, log_path, proc
    try:
        _wait_until_up(url, f"{base}/api/status?token={token}", "JupyterLab", nb.name, timeout)
        yield url
    except BaseException:
        sys.stderr.write(f"\n--- JupyterLab log ({log_path}), last lines ---\n{url.log()[-4000:]}\n")
        raise
    finally:
        _terminate(proc)
        shutil.rmtree(state, ignore_errors=True)


__all__ += ["LAB_SETTINGS", "serve_lab"]

"""The embedding explorer in a real JupyterLab (not only Voilà): the server serves the repository, headless
Chromium opens a small notebook (three tiny runs trained in seconds, then the explorer), runs all cells from the
menu as a person does, and moves the point, the colouring factor and run B, waiting for the explorer's marker after
each. Screenshots land in ``test-artifacts/embedding-lab-*.png``.

Run: ``.venv/bin/python -m pytest -m browser tests/browser/test_browser_embedding.py -v``. Without Chromium,
Playwright or JupyterLab the test is skipped with the reason, except under ``CI=true`` where it fails.
"""
from __future__ import annotations

import contextlib
import re
import time

import pytest
from harness import (BROKEN_WIDGET, DEFAULT_FAIL, click_button, page_text, parse_marker, screenshot,
                     select_dropdown, serve_lab, set_int_text, wait_for_text)

NOTEBOOK = "tests/browser/notebooks/embedding_smoke.ipynb"
DONE = r"embedding-state: point={p} run_a={a} run_b={b} factor={f} k={k} done"
EXPLORER = ".gpsviz-embedding-explorer"
LAB_LOAD_S = 180              # JupyterLab's page and the notebook's kernel
FIRST_RENDER_S = 400          # the notebook trains three tiny runs first (about 10 s on two cores)
STEP_S = 90                   # one redraw (a run not shown before is embedded first)


def open_lab(page, url: str, timeout: float = LAB_LOAD_S) -> None:
    """Open the notebook in JupyterLab and wait until its cells are in the page and its kernel is idle; accept a
    kernel-selection dialog if one asks (the default kernel)."""
    page.goto(url, wait_until="domcontentloaded", timeout=timeout * 1000)
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=timeout * 1000)
    deadline = time.monotonic() + timeout
    while True:
        dialog = page.locator(".jp-Dialog")
        if dialog.count() and dialog.first.is_visible():
            dialog.first.locator("button.jp-mod-accept").first.click()      # "Select" the notebook's kernel
        status = page.locator(".jp-NotebookPanel .jp-Notebook-ExecutionIndicator").first
        if status.count() and status.get_attribute("data-status") == "idle":
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"the notebook's kernel was not idle after {timeout:.0f} s; page text ends with:\n"
                               f"{page_text(page)[-2000:]}")
        page.wait_for_timeout(250)


def _started(page):
    """Code cells whose prompt shows that they run or ran (``[*]``, ``[1]``)."""
    return page.locator(".jp-NotebookPanel .jp-CodeCell .jp-InputPrompt").filter(
        has_text=re.compile(r"\[(\*|\d+)\]"))


def run_all_cells(page, attempts: int = 3) -> None:
    """The menu Run → Run All Cells, as a person does, until a code cell shows that it runs; then, if the menu
    never started one, the keyboard: Shift+Enter on each code cell in turn (select the first, run, advance).

    The menu item is hovered until Lumino marks it active before it is clicked (a click is delivered to the item
    under the pointer when the button is released, so the item must be the active one then)."""
    item = page.locator('.lm-Menu-item[data-command="notebook:run-all-cells"]').first
    for attempt in range(1, attempts + 1):
        try:
            page.keyboard.press("Escape")                                # no menu or dialog left open
            page.locator(".jp-NotebookPanel .jp-CodeCell .jp-InputPrompt").first.click(timeout=10_000)
            page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^\s*Run\s*$")).first.click(timeout=10_000)
            item.wait_for(state="visible", timeout=10_000)
            item.hover(timeout=10_000)
            page.wait_for_function("el => el.classList.contains('lm-mod-active')", arg=item.element_handle(),
                                   timeout=10_000)
            if "lm-mod-disabled" in (item.get_attribute("class") or ""):
                raise RuntimeError("the menu item Run All Cells is disabled")
            item.click(timeout=10_000)
            _started(page).first.wait_for(state="visible", timeout=20_000)
            return
        except Exception as e:                                           # not started: try again
            print(f"Run → Run All Cells, attempt {attempt}: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
    page.keyboard.press("Escape")
    cells = page.locator(".jp-NotebookPanel .jp-CodeCell")
    for i in range(cells.count()):                                       # the keyboard, cell by cell
        cells.nth(i).locator(".jp-InputPrompt").first.click()
        page.keyboard.press("Shift+Enter")
        cells.nth(i).locator(".jp-InputPrompt").filter(has_text=re.compile(r"\[(\*|\d+)\]")).first.wait_for(
            state="visible", timeout=20_000)
    print("the cells were started with Shift+Enter (the menu did not start them)")


def explorer_screenshot(page, name: str):
    """:func:`screenshot` of the whole explorer: the viewport is made tall enough for JupyterLab's notebook panel
    to hold it above the status bar, then restored."""
    size = page.viewport_size
    box = page.locator(EXPLORER).first.bounding_box()
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], int(box["height"]) + 400)})
    try:
        return screenshot(page, name, selector=EXPLORER)
    finally:
        page.set_viewport_size(size)


def no_errors(page) -> None:
    text = page_text(page)
    assert not BROKEN_WIDGET.search(text), f"a widget output is broken:\n{text[-3000:]}"
    assert not DEFAULT_FAIL.search(text), f"a cell failed:\n{text[-3000:]}"


def step(page, **marker) -> dict[str, str]:
    """Wait for the marker with these values (the others: any), fail on a broken widget or a traceback."""
    fields = {key: marker.get(key, r"\S+") for key in ("p", "a", "b", "f", "k")}
    m = wait_for_text(page, DONE.format(**fields), timeout=STEP_S)
    no_errors(page)
    return parse_marker(m.group(0), "embedding-state")


@pytest.mark.browser
@pytest.mark.timeout(900)
def test_embedding_explorer_in_jupyterlab(chromium_page, tmp_path):
    page = chromium_page
    with serve_lab(NOTEBOOK, env={"GPSVIZ_DATA": str(tmp_path / "data")}) as url:
        try:
            drive(page, url)
        except BaseException:
            with contextlib.suppress(Exception):                          # what the page showed when it failed
                screenshot(page, "embedding-lab-failure")
            print("browser console errors:", page.console_errors[-20:])
            raise


def drive(page, url: str) -> None:
    """Open the notebook, run it, move the controls (waiting for the marker after each), take the screenshots."""
    assert "/lab/tree/tests/browser/notebooks/embedding_smoke.ipynb?token=" in url
    open_lab(page, url)
    run_all_cells(page)
    m = wait_for_text(page, DONE.format(p=r"\d+", a=r"\S+", b=r"\S+", f=r"\S+", k=r"\d+"),
                      timeout=FIRST_RENDER_S)
    st = parse_marker(m.group(0), "embedding-state")
    assert st == {"point": "0", "run_a": "SimCLR", "run_b": "GPS-SimCLR", "factor": "label", "k": "8"}, st
    no_errors(page)
    figure = page.locator(f"{EXPLORER} .gpsviz-figure").first
    assert figure.is_visible()
    assert figure.bounding_box()["width"] >= 700                     # shown at (about) its nominal width
    explorer_screenshot(page, "embedding-lab-initial")

    set_int_text(page, ".gpsviz-point-text", 3)                      # type a point
    step(page, p=3, a="SimCLR", b="GPS-SimCLR", f="label", k=8)

    select_dropdown(page, ".gpsviz-factor", "colour")                # colour the maps by another factor
    step(page, p=3, a="SimCLR", b="GPS-SimCLR", f="colour", k=8)

    select_dropdown(page, ".gpsviz-run-b", "UOTA-SimCLR")            # run B: a UOTA run, with its recorded views
    step(page, p=3, a="SimCLR", b="UOTA-SimCLR", f="colour", k=8)
    text = page_text(page)
    assert "positives the loss used:" in text and "UOTA-SimCLR: self" in text
    explorer_screenshot(page, "embedding-lab-changed")

    click_button(page, "random")                                     # another point, both maps follow
    st = step(page, p=r"(?!3\b)\d+", a="SimCLR", b="UOTA-SimCLR", f="colour", k=8)
    assert st["point"] != "3"
    screenshot(page, "embedding-lab-page")
    no_errors(page)
    errors = [e for e in page.console_errors if "ERR_NAME_NOT_RESOLVED" not in e and "ERR_INTERNET" not in e]
    widget_errors = [e for e in errors if "widget" in e.lower()]
    assert not widget_errors, widget_errors

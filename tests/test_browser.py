"""Notebook 06 in a real browser: JupyterLab on localhost, driven in headless Chromium by Selenium.

papermill runs notebooks without a front end, so it cannot see what only a browser shows: a widget
that fails to render, a button whose callback raises, an audio player that never appears. This test
opens a copy of notebook 06 in JupyterLab, runs all cells, presses the generation playground's
Generate button (with a new seed) and waits for a new `<audio>` element in the playground's output.
Screenshots go to $SLAMLIB_SCREENSHOTS (or the test's tmp_path); the test prints where. It runs on
the session's tiny tutorial run; SLAMLIB_BROWSER_RUN=DIR runs it on a finished run folder instead.

It needs `chromium` and `chromedriver` on PATH (Debian: `apt-get install chromium chromium-driver`,
which .ci/run does) and skips without them."""

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
import time
import urllib.request
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "notebooks" / "06_evaluation.ipynb"
GENERATE = "button.slamlib-generate"
PLAYGROUND_OUTPUT = ".slamlib-playground-output"


@contextlib.contextmanager
def products_kept(run: Path, keep: Path, folders=("metrics", "figures")):
    """Put `run`'s metrics and figures back afterwards: notebook 06 rewrites them here (with fewer
    generations), and the other tests read the run as the tutorial left it. Its score cache stays,
    since a copy of the run elsewhere would miss it (the cache keys hold the data's paths)."""
    for name in folders:
        if (run / name).is_dir():
            shutil.copytree(run / name, keep / name)
    try:
        yield
    finally:
        for name in folders:
            shutil.rmtree(run / name, ignore_errors=True)
            if (keep / name).is_dir():
                shutil.copytree(keep / name, run / name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class JupyterLab:
    """`jupyter lab` on 127.0.0.1 serving `root`, with Jupyter's user folders under `home` (so neither
    the user's settings nor kernels leak in) and nothing that reaches the network."""

    def __init__(self, root: Path, home: Path):
        self.root, self.home = root, home
        self.port, self.token = _free_port(), secrets.token_hex(16)
        self.log = home / "jupyterlab.log"

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}?token={self.token}"

    def __enter__(self) -> JupyterLab:
        dirs = {name: self.home / name.lower() for name in
                ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "JUPYTER_PATH",
                 "JUPYTERLAB_SETTINGS_DIR", "JUPYTERLAB_WORKSPACES_DIR")}
        for folder in dirs.values():
            folder.mkdir(parents=True, exist_ok=True)
        # no "get news?" question and no update check: both would ask the internet
        notification = dirs["JUPYTERLAB_SETTINGS_DIR"] / "@jupyterlab" / "apputils-extension"
        notification.mkdir(parents=True)
        (notification / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false", "checkForUpdates": False}))
        env = {**os.environ, **{name: str(folder) for name, folder in dirs.items()}}
        env.pop("MPLBACKEND", None)  # figures inline, as a reader sees them
        env.pop("SLAMLIB_STATIC", None)  # widgets, not their static stand-ins
        cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", "--ServerApp.ip=127.0.0.1",
               f"--port={self.port}", f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.root}",
               "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
               "--LabApp.extension_manager=readonly", "--LabApp.expose_app_in_browser=True"]
        # a session of its own, so that stopping it also stops the kernels it started
        self.log_file = self.log.open("w")
        self.process = subprocess.Popen(cmd, env=env, stdout=self.log_file, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        try:
            self._wait_until_up(timeout=120)
        except BaseException:
            self.__exit__()
            raise
        return self

    def _wait_until_up(self, timeout: float) -> None:
        no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"jupyter lab exited with {self.process.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(OSError):
                with no_proxy.open(self.url("api/status"), timeout=5) as response:
                    if response.status == 200:
                        return
            time.sleep(0.5)
        raise AssertionError(f"jupyter lab did not answer within {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def __exit__(self, *exc) -> None:
        self.process.terminate()  # the server shuts its kernels down on SIGTERM
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.log_file.close()


def find_browser() -> tuple[str, str]:
    """Paths of chromium and chromedriver, or skip with one line that says how to get them."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    chromedriver = shutil.which("chromedriver")
    if not (chromium and chromedriver):
        pytest.skip("no browser found: the JupyterLab test needs chromium and chromedriver on PATH "
                    "(Debian: apt-get install chromium chromium-driver; .ci/run installs them)")
    return chromium, chromedriver


@contextlib.contextmanager
def chrome(log_dir: Path):
    """Headless Chromium under Selenium, with both binaries given: Selenium Manager downloads nothing."""
    chromium, chromedriver = find_browser()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,2000",
                 "--no-proxy-server", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--autoplay-policy=no-user-gesture-required"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = webdriver.ChromeService(executable_path=chromedriver, log_output=str(log_dir / "chromedriver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        driver.quit()


# The notebook as JupyterLab's model has it (window.jupyterapp: --LabApp.expose_app_in_browser).
NOTEBOOK_STATE = """
const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
if (!panel || !panel.sessionContext || !panel.content.model) return null;
const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
const code = Array.from(panel.content.model.cells)
    .filter(c => c.type === 'code' && c.sharedModel.getSource().trim());
const errors = code.flatMap(c => c.outputs.toJSON().filter(o => o.output_type === 'error'))
    .map(o => o.traceback.join('\\n'));
const running = Array.from(document.querySelectorAll('.jp-InputPrompt'))
    .filter(p => p.textContent.includes('*')).length;
return {kernel: kernel ? kernel.status : null, cells: code.length,
        unrun: code.filter(c => c.executionCount === null).length, running: running, errors: errors};
"""

# The input of the playground's "seed" field (an ipywidgets IntText in the box of the Generate button).
SEED_FIELD = """
const fields = arguments[0].closest('.widget-vbox').querySelectorAll('.widget-text');
const seed = Array.from(fields).find(f => f.querySelector('label')?.textContent.trim() === 'seed');
return seed ? seed.querySelector('input') : null;
"""

# What the page shows of failures: widgets that did not render, explorers' problems, error and stderr
# outputs with a traceback.
PAGE_ERRORS = """
const found = [];
for (const node of document.querySelectorAll('.jupyter-widgets-error-widget')) found.push(node.innerText);
for (const node of document.querySelectorAll('.jp-OutputArea-output')) {
    const text = node.innerText;
    if (text.includes('Error displaying widget')) found.push(text);
}
for (const node of document.querySelectorAll('.slamlib-explorer-output')) {
    const text = node.innerText;  // slamlib's explorers say what went wrong after a warning sign
    if (text.includes('\u26a0')) found.push(text);
}
for (const node of document.querySelectorAll('.jp-RenderedText[data-mime-type="application/vnd.jupyter.stderr"]')) {
    const text = node.innerText;
    if (text.includes('Traceback') || text.includes('Error')) found.push(text);
}
return found;
"""


class NotInTime(AssertionError):
    pass


def wait_for(condition, timeout: float, what: str, poll: float = 0.5):
    """Poll `condition()` until it returns something true; fail saying `what` did not happen."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise NotInTime(f"{what} within {timeout:.0f} s")
        time.sleep(poll)


def _ansi_free(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


class Screenshots:
    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.taken: list[Path] = []

    def take(self, driver, name: str) -> None:
        path = self.folder / f"{len(self.taken) + 1:02d}_{name}.png"
        driver.save_screenshot(str(path))
        self.taken.append(path)


def play_in_jupyterlab(driver, lab: JupyterLab, notebook: str, shots: Screenshots, *, run_timeout: float = 600):
    """Open `notebook` (under the lab's root), run all cells, press Generate, wait for the audio player;
    fail on any error the page shows."""
    driver.get(lab.url(f"lab/tree/{notebook}"))

    def state():
        return driver.execute_script(NOTEBOOK_STATE)

    wait_for(lambda: (s := state()) and s["kernel"] == "idle", 180, "the notebook's kernel was not idle")
    driver.execute_script("window.jupyterapp.shell.collapseLeft();")  # the notebook gets the whole width
    driver.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells');")

    def finished():
        s = state()
        if s is None:
            return False
        if s["errors"]:
            shots.take(driver, "error")
            raise AssertionError("a cell failed in JupyterLab:\n" + _ansi_free("\n\n".join(s["errors"]))[-4000:])
        return s["kernel"] == "idle" and s["unrun"] == 0 and s["running"] == 0

    wait_for(finished, run_timeout, f"running all cells of {notebook} did not finish")
    # the first figure, or else the top: what a reader looks at first
    driver.execute_script("(document.querySelector('.jp-OutputArea-output img') || "
                          "document.querySelector('.jp-Notebook .jp-Cell')).scrollIntoView({block: 'start'});")
    shots.take(driver, "run_all")
    assert driver.execute_script(PAGE_ERRORS) == []

    button = wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, GENERATE), 60,
                      f"no Generate button ({GENERATE}) appeared")[0]
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", button)
    shots.take(driver, "playground")
    # The playground shows a first generation already, and the same settings would give the same
    # output again: a new seed, so that only a player made by the click counts.
    driver.execute_script(f"document.querySelectorAll('{PLAYGROUND_OUTPUT} audio')"
                          ".forEach(a => a.dataset.beforeClick = 'yes');")
    seed = driver.execute_script(SEED_FIELD, button)
    assert seed is not None, "the playground has no text field labelled 'seed' beside its Generate button"
    seed.send_keys(Keys.CONTROL, "a")  # clear() would leave the 0 ipywidgets puts back
    seed.send_keys("1", Keys.ENTER)
    button.click()
    new_audio = f"{PLAYGROUND_OUTPUT} audio:not([data-before-click])"

    def played():
        if errors := driver.execute_script(PAGE_ERRORS):
            raise AssertionError("pressing Generate gave an error:\n" + "\n".join(errors)[-4000:])
        audio = driver.find_elements(By.CSS_SELECTOR, new_audio)
        # a player with a sound in it: the browser decoded its duration
        return audio and driver.execute_script("return arguments[0].duration > 0;", audio[0])

    try:
        wait_for(played, 120, f"no new playable <audio> appeared in {PLAYGROUND_OUTPUT} after pressing Generate")
        wait_for(lambda: state()["kernel"] == "idle", 60, "the kernel was still busy after Generate")
    except NotInTime as failure:
        outputs = [o.text for o in driver.find_elements(By.CSS_SELECTOR, PLAYGROUND_OUTPUT)]
        raise AssertionError(f"{failure}; the output shows: {outputs}") from None
    finally:
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", button)
        shots.take(driver, "generated")
    assert driver.execute_script(PAGE_ERRORS) == []


@pytest.fixture
def run_root(request):
    """The session's tiny tutorial run; SLAMLIB_BROWSER_RUN=DIR uses a finished run folder instead."""
    find_browser()  # skip before waiting for the tutorial
    if os.environ.get("SLAMLIB_BROWSER_RUN"):
        return Path(os.environ["SLAMLIB_BROWSER_RUN"])
    return request.getfixturevalue("tiny_run").root


@pytest.mark.slow
def test_notebook_06_generates_audio_in_jupyterlab(run_root, tmp_path, capsys):
    import papermill

    root = tmp_path / "lab"
    root.mkdir()
    papermill.execute_notebook(NOTEBOOK, root / NOTEBOOK.name, prepare_only=True,
                               parameters={"RUN_DIR": str(run_root), "N_GENERATIONS": 2})
    shots = Screenshots(Path(os.environ.get("SLAMLIB_SCREENSHOTS", tmp_path / "screenshots")))
    with capsys.disabled():
        print(f"\nJupyterLab screenshots: {shots.folder}")
    with products_kept(run_root, tmp_path / "kept"), JupyterLab(root, tmp_path / "jupyter") as lab, \
            chrome(tmp_path) as driver:
        try:
            play_in_jupyterlab(driver, lab, NOTEBOOK.name, shots)
        except BaseException:
            console = [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
            print("browser console errors:", *console[-20:], "jupyter lab log:", lab.log_tail(), sep="\n")
            raise

"""The dashboard in a real headless Chromium (Debian `chromium` + `chromium-driver`, Selenium)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

#: Chromium flags for a machine without a display, sandbox or network.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1400,2400",
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def dashboard_server(run_dir: Path, log: Path) -> Iterator[str]:
    """`mlip-autopipe dashboard RUN_DIR` on a free port; yields its URL once it answers."""
    port = free_port()
    command = [sys.executable, "-m", "mlip_autopipe.cli.app", "dashboard", str(run_dir), "--port", str(port)]
    env = dict(os.environ, PYTHONPATH=str(REPO / "lib"))
    with open(log, "w") as output:
        server = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://localhost:{port}/_stcore/health", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the dashboard did not start: {log.read_text()[-2000:]}") from None
                time.sleep(0.5)
        yield f"http://localhost:{port}/"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def page_text_and_screenshot(url: str, screenshot: Path, ready_text: str, timeout: float = 180) -> str:
    """Open ``url`` in headless Chromium, wait until ``ready_text`` shows, screenshot it, return
    the page's visible text."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    chromium, driver_binary = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver_binary is None:
        raise RuntimeError("Chromium is not installed (Debian: apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-')}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_binary), options=options)
    try:
        driver.get(url)
        WebDriverWait(driver, timeout).until(
            lambda page: ready_text in page.find_element(By.TAG_NAME, "body").text
        )
        time.sleep(2)  # charts render after the text
        text = driver.find_element(By.TAG_NAME, "body").text
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(screenshot))
        return str(text)
    finally:
        driver.quit()

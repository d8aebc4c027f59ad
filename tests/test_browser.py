"""The result pages as a browser shows them (headless Chromium)."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import cv2
import pytest



# ----------------------------------------------------------------------------- rendering in a browser

def test_index_renders_in_headless_chromium(written_report, tmp_path):
    chromium = "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else shutil.which("chromium")
    if chromium is None:
        pytest.skip("chromium is not installed (/usr/bin/chromium missing); page rendering not checked")
    _, index, _, _ = written_report
    shot = tmp_path / "shot.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1200,2000",
                    index.resolve().as_uri()], check=True, timeout=60, capture_output=True)
    image = cv2.imread(str(shot))
    assert image is not None and image.std() > 10  # a blank (all-white) page has std ~0

"""The HTML report renders in headless Chromium with its embedded figures (skipped without chromium), and the
docs/img images are kept small (scripts/docs_images.py)."""
import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

SCRIPTS = Path(__file__).resolve().parents[3] / "scripts"
SCRIPT = SCRIPTS / "render_report_screenshot.sh"
# the lookup the script makes: $CHROMIUM, else chromium / chromium-browser on PATH
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(not CHROMIUM or shutil.which("bash") is None, reason="chromium is not installed")
def test_report_renders_in_headless_chromium(reports, tmp_path):
    from matplotlib import image

    html = reports["main"].html
    out = tmp_path / "shot.png"
    res = subprocess.run(["bash", str(SCRIPT), str(html), str(out), "1200", "2400"], check=False,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    img = image.imread(out)
    assert img.shape[:2] == (2400, 1200)
    gray = img[..., :3].mean(axis=-1)
    # figures and tables paint a good part of the page; a blank or broken page would be almost all white
    assert (gray < 0.9).mean() > 0.03
    colour = np.abs(img[..., 0] - img[..., 2]) > 0.2  # the family colours of the embedded PNG figures
    assert colour.mean() > 0.002
    # nothing sticks out to the right: the page's right margin (last 1 %) is blank, no clipped table or figure
    assert (gray[:, -12:] > 0.97).all()


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_screenshot_script_is_one_line_without_chromium_or_report(tmp_path):
    env = {**os.environ, "CHROMIUM": "", "PATH": "/nonexistent"}
    missing = subprocess.run([shutil.which("bash"), str(SCRIPT), str(tmp_path / "nope.html")],
                             check=False, capture_output=True, text=True, env=env)
    assert missing.returncode == 2 and "no such report" in missing.stderr
    page = tmp_path / "r.html"
    page.write_text("<p>x</p>")
    nochrome = subprocess.run([shutil.which("bash"), str(SCRIPT), str(page)], check=False,
                              capture_output=True, text=True, env=env)
    assert nochrome.returncode == 3 and "apt-get install -y chromium" in nochrome.stderr


def _docs_images():
    spec = importlib.util.spec_from_file_location("docs_images", SCRIPTS / "docs_images.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_shrink_keeps_the_top_of_a_page_small_and_crops_a_table_to_its_ink(tmp_path):
    from PIL import Image, ImageDraw

    shrink = _docs_images().shrink
    page = Image.new("RGB", (2800, 6400), "white")
    d = ImageDraw.Draw(page)
    for y in range(0, 6400, 40):  # lines of "text" and a coloured block
        d.line((100, y, 2700, y), fill=(30, 30, 30), width=3)
    d.rectangle((300, 500, 1500, 1500), fill=(0, 114, 178))
    page.save(tmp_path / "page.png")
    out = shrink(tmp_path / "page.png", tmp_path / "small.png", width=1400, height=2600)
    small = Image.open(out)
    assert small.width == 1400 and 2580 <= small.height <= 2600 and small.mode == "P"
    assert (np.asarray(small.convert("L"))[-1] > 250).all()  # cut in a blank row, not through a line
    assert np.asarray(small.convert("RGB"))[500, 400].tolist() == [0, 114, 178]  # colours survive the palette

    table = Image.new("RGB", (1000, 800), "white")
    ImageDraw.Draw(table).rectangle((200, 100, 599, 299), fill="black")
    table.save(tmp_path / "table.png")
    cropped = Image.open(shrink(tmp_path / "table.png", tmp_path / "t.png", width=1400))
    assert cropped.size == (400 + 24, 200 + 24)  # the ink and a 12-pixel margin

"""The HTML report renders in headless Chromium with its embedded figures (skipped without chromium)."""
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = Path("/usr/bin/chromium")
SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "render_report_screenshot.sh"


@pytest.mark.skipif(not CHROMIUM.exists() or shutil.which("bash") is None, reason="chromium is not installed")
def test_report_renders_in_headless_chromium(reports, tmp_path):
    from matplotlib import image

    html = reports["main"].html
    out = tmp_path / "shot.png"
    res = subprocess.run(["bash", str(SCRIPT), str(html), str(out), "1200", "2400"], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    img = image.imread(out)
    assert img.shape[:2] == (2400, 1200)
    gray = img[..., :3].mean(axis=-1)
    # figures and tables paint a good part of the page; a blank or broken page would be almost all white
    assert (gray < 0.9).mean() > 0.03
    colour = np.abs(img[..., 0] - img[..., 2]) > 0.2  # the family colours of the embedded PNG figures
    assert colour.mean() > 0.002

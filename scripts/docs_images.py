"""Regenerate the report images under docs/img from one run, in one command:

    .venv/bin/python scripts/docs_images.py results/example/<run-id>

- docs/img/report_screenshot.png: the run's HTML report (built afresh in a temporary folder, so reports/ is
  untouched) rendered by headless Chromium (scripts/render_report_screenshot.sh), the top WIDTH x HEIGHT
  pixels, stored as a 256-colour PNG so the file stays small.
- docs/img/latex_main_table.png: the first page of the run's report.tex (the booktabs main table) compiled
  with pdflatex and rendered by pdftoppm, cropped to its ink. Skipped, with a line saying so, when pdflatex or
  pdftoppm is missing.

Needs Debian's chromium (apt-get install -y chromium); pdflatex and pdftoppm come from texlive-latex-base,
texlive-latex-recommended (booktabs) and poppler-utils. Exits 2 with one line for a run it cannot find or
a missing Chromium.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageChops

REPO = Path(__file__).resolve().parents[1]
SCREENSHOT = REPO / "scripts" / "render_report_screenshot.sh"


def shrink(src: Path, dst: Path, *, width: int, height: int | None = None) -> Path:
    """``src`` cropped to its top ``height`` pixels (after scaling to ``width``; cut at the lowest blank row),
    white margins trimmed when ``height`` is None, saved as an optimised 256-colour PNG."""
    img = Image.open(src).convert("RGB")
    if height is None:  # crop to the ink, with a small white margin
        box = ImageChops.difference(img, Image.new("RGB", img.size, "white")).getbbox()
        if box:
            pad = 12
            img = img.crop((max(box[0] - pad, 0), max(box[1] - pad, 0),
                            min(box[2] + pad, img.width), min(box[3] + pad, img.height)))
    if img.width > width:
        img = img.resize((width, round(img.height * width / img.width)), Image.LANCZOS)
    if height is not None and img.height > height:  # cut in a blank row, not through a line of text
        rows = (ImageChops.difference(img, Image.new("RGB", img.size, "white")).convert("L")
                .crop((0, height // 2, img.width, height)).point(lambda v: 255 if v > 8 else 0))
        ink = [rows.crop((0, y, rows.width, y + 1)).getbbox() is not None for y in range(rows.height)]
        blank = [y for y in range(len(ink) - 1, -1, -1) if not ink[y]]
        img = img.crop((0, 0, img.width, height // 2 + blank[0] + 1 if blank else height))
    img.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(dst, optimize=True)
    return dst


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", help="a run directory (results/example/<run-id>) or a run id under --results")
    ap.add_argument("--results", default="results", help="results root for a bare run id")
    ap.add_argument("--out", default=str(REPO / "docs" / "img"), help="where the two PNGs go")
    ap.add_argument("--width", type=int, default=1400, help="browser window width in CSS pixels")
    ap.add_argument("--height", type=int, default=2600, help="height of the page top kept in the screenshot")
    args = ap.parse_args()

    from bench.report import build_report

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        try:
            res = build_report([args.run], results_root=args.results, out_root=tmp, formats=("html", "tex"))
        except (OSError, ValueError) as exc:  # RunNotFoundError (a FileNotFoundError), bad runs: one line
            print(f"docs_images: {exc}", file=sys.stderr)
            return 2
        raw = tmp / "shot.png"
        proc = subprocess.run(["bash", str(SCREENSHOT), str(res.html), str(raw), str(args.width),
                               str(args.height + 200)], check=False, capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"docs_images: {proc.stderr.strip()}", file=sys.stderr)
            return 2
        print(shrink(raw, out / "report_screenshot.png", width=args.width, height=args.height))

        if not (shutil.which("pdflatex") and shutil.which("pdftoppm")):
            print("docs_images: pdflatex or pdftoppm not installed; docs/img/latex_main_table.png left as it is")
            return 0
        tex = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "report.tex"],
                             cwd=res.out_dir, check=False, capture_output=True, text=True)
        if tex.returncode != 0:
            print(f"docs_images: pdflatex failed on {res.latex}:\n{tex.stdout[-2000:]}", file=sys.stderr)
            return 1
        subprocess.run(["pdftoppm", "-f", "1", "-l", "1", "-r", "130", "-png", "-singlefile", "report.pdf",
                        "page"], cwd=res.out_dir, check=True)
        print(shrink(res.out_dir / "page.png", out / "latex_main_table.png", width=1400))
    return 0


if __name__ == "__main__":
    sys.exit(main())

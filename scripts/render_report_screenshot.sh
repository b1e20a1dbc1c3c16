#!/usr/bin/env bash
# Screenshot a report.html in headless Chromium: proves the self-contained report renders with its figures.
#   scripts/render_report_screenshot.sh reports/<run-id>/report.html [out.png] [width] [height]
# Needs Debian's chromium (apt-get install -y chromium). Makes no network requests (the report embeds all).
set -euo pipefail

html="${1:?usage: $0 REPORT_HTML [OUT_PNG] [WIDTH] [HEIGHT]}"
out="${2:-${html%.html}.png}"
width="${3:-1400}"
height="${4:-3200}"
chromium="${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}"

[[ -f "$html" ]] || { echo "no such report: $html" >&2; exit 2; }
[[ -n "$chromium" ]] || { echo "chromium not found; install it with: apt-get install -y chromium" >&2; exit 3; }

profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
abs_html="$(cd "$(dirname "$html")" && pwd)/$(basename "$html")"
mkdir -p "$(dirname "$out")"
abs_out="$(cd "$(dirname "$out")" && pwd)/$(basename "$out")"

timeout 90 "$chromium" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync --disable-dev-shm-usage \
  --hide-scrollbars --user-data-dir="$profile" --window-size="${width},${height}" \
  --virtual-time-budget=5000 --screenshot="$abs_out" "file://$abs_html" >/dev/null 2>&1 || true

[[ -s "$abs_out" ]] || { echo "chromium wrote no screenshot for $html" >&2; exit 1; }
echo "$abs_out"

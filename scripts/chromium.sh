#!/bin/sh
# Print the path of a headless-capable Chromium, installing Debian's `chromium` package first if it is missing.
# Used by tests/dse/test_report.py to open the HTML report headless. Needs root and apt-get to install;
# exits 2 with a reason on stderr when it cannot. apt output goes to stderr; stdout is only the path.
set -eu

find_chromium() {
    for c in chromium chromium-browser google-chrome; do
        if command -v "$c" >/dev/null 2>&1; then command -v "$c"; return 0; fi
    done
    return 1
}

if find_chromium; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
    echo "chromium.sh: chromium is not installed and installing it needs root (apt-get install chromium)" >&2
    exit 2
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "chromium.sh: chromium is not installed and there is no apt-get to install it" >&2
    exit 2
fi
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -q && apt-get install -y -q chromium; } >&2; then
    echo "chromium.sh: apt-get could not install chromium (no package registry reachable?)" >&2
    exit 2
fi
find_chromium || { echo "chromium.sh: chromium installed but not on PATH" >&2; exit 2; }

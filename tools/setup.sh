# Sourced by tools/run and tools/test: install what is missing (Debian
# packages only, apt-get update at most once) and build one configuration.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Packages the build, the tests and the benchmarks need.
DISPATCHD_PACKAGES=(gcc make cmake pkg-config libevent-dev libjemalloc-dev
    librocksdb-dev libcriterion-dev libhiredis-dev uthash-dev libinih-dev
    libjansson-dev libssl-dev openssl ca-certificates
    redis-tools python3 python3-redis python3-prometheus-client curl)

# What the browser tests add (tools/test): Debian's chromium, fonts for the
# board's Chinese and emoji, and node with npm unless a node is there
# already (a node from elsewhere brings its own npm, and Debian's npm
# package would conflict with it).
DISPATCHD_BROWSER_PACKAGES=(chromium fonts-wqy-microhei fonts-noto-color-emoji)
command -v node >/dev/null 2>&1 || DISPATCHD_BROWSER_PACKAGES+=(nodejs)
command -v npm >/dev/null 2>&1 || DISPATCHD_BROWSER_PACKAGES+=(npm)

dispatchd_install() {
    local missing=() p
    for p in "${DISPATCHD_PACKAGES[@]}" "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' \
            || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "setup: installing ${missing[*]}" >&2
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
}

# dispatchd_build DIR [cmake args...]: configure once, then build incrementally.
dispatchd_build() {
    local dir=$1; shift
    if [ ! -f "$dir/CMakeCache.txt" ]; then
        cmake -S "$ROOT" -B "$dir" "$@" >/dev/null
    fi
    cmake --build "$dir" -j "$(nproc)"
}

# The browser tests' driver (playwright-core, pinned in the lockfile):
# npm ci into tests/browser/node_modules when it is missing or the
# lockfile changed since.  It downloads no browser: the tests use
# /usr/bin/chromium.
dispatchd_npm() {
    local dir="$ROOT/tests/browser" sum
    sum=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
    if [ -f "$dir/node_modules/.lock-sha256" ] &&
        [ "$(cat "$dir/node_modules/.lock-sha256")" = "$sum" ]; then
        return 0
    fi
    echo "setup: npm ci in tests/browser" >&2
    (cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit \
        --no-fund --loglevel=error </dev/null)
    echo "$sum" >"$dir/node_modules/.lock-sha256"
}

# Sourced by tools/run and tools/test: install what is missing (Debian
# packages only, apt-get update at most once) and build one configuration.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Packages the build, the tests and the benchmarks need.
DISPATCHD_PACKAGES=(gcc make cmake pkg-config libevent-dev libjemalloc-dev
    librocksdb-dev libcriterion-dev libhiredis-dev uthash-dev libinih-dev
    libjansson-dev libssl-dev openssl ca-certificates
    redis-tools python3 python3-redis python3-prometheus-client curl)

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

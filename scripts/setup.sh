#!/bin/sh
# Set up pyreconcile on a fresh Debian 12 machine, as root: Debian packages,
# a virtualenv in .venv, and the project installed into it (editable).
#   scripts/setup.sh          what the demo needs
#   scripts/setup.sh --test   plus what the tests need (peers, test tools)
#   scripts/setup.sh --bench  plus the peers the benchmarks race (python -m bench)
set -eu
cd "$(dirname "$0")/.."

if [ "$(id -u)" != "0" ]; then
    echo "error: pyreconcile's setup needs root (it installs Debian packages, and the engine" >&2
    echo "creates namespaces, mounts and cgroups); run it as root, e.g. with sudo" >&2
    exit 1
fi

# tini: its static build is the init of containers with `init: true` (bound in read-only)
PACKAGES="python3 python3-venv python3-dev gcc libc6-dev busybox-static iproute2 nftables ca-certificates curl tini libseccomp2"
# git: the daemon's git sources fetch and check out with the git CLI (pyreconcile daemon --git)
PACKAGES="$PACKAGES git"
if [ "${1:-}" = "--test" ] || [ "${1:-}" = "--bench" ]; then
    # peers and tools the tests drive: runc/crun (the shim's external runtimes),
    # skopeo (OCI layouts, docker archives, registry interop), docker-registry (a
    # registry on loopback), docker.io (a private dockerd that loads and runs what
    # we save and push; the tests start it with their own data root and socket)
    PACKAGES="$PACKAGES runc crun skopeo docker-registry docker.io git"
fi

if [ "${1:-}" = "--bench" ]; then
    # the peers bench/ measures against (dockerd and compose, podman and its pause
    # image's catatonit, hyperfine for reference), iperf3 for the network suite's
    # TCP throughput between containers; see docs/benchmarks.md
    PACKAGES="$PACKAGES docker-compose podman catatonit hyperfine iperf3"
fi

missing=""
for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "installing Debian packages:$missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "error: pyreconcile needs Python 3.11 or newer ($PYTHON is $("$PYTHON" -V 2>&1))" >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
if [ "${1:-}" = "--test" ] || [ "${1:-}" = "--bench" ]; then
    .venv/bin/python -m pip install -q -e '.[test]'
else
    .venv/bin/python -m pip install -q -e .
fi
echo "pyreconcile is installed in $(pwd)/.venv (run .venv/bin/pyreconcile)" >&2

"""Stable names of contestants and cases (they key the JSON and the goals)."""

from __future__ import annotations

# start
PYR_SHIM = "pyreconcile (shim path)"
PYR_RUNC = "pyreconcile-runc run"
RUNC = "runc run"
CRUN = "crun run"
DOCKER_RUN = "docker run --rm"
PODMAN_RUN = "podman run --rm"
START_CASE = "/bin/true: create → start → wait → delete"

# apply
PYR_APPLY = "pyreconcile apply"
COMPOSE = "docker-compose + dockerd"
PODMAN_KUBE = "podman kube play"
APPLY_PHASES = ("cold apply", "no-op re-apply", "one-container change", "teardown")


def apply_case(n: int, phase: str) -> str:
    return f"N={n}: {phase}"


# memory
PYR_SHIM_PROC = "pyreconcile shim"
CONTAINERD_SHIM = "containerd-shim-runc-v2"
CONMON = "conmon"
MEMORY_PSS_CASE = "PSS per container's supervising process, 20 running"
MEMORY_RSS_CASE = "RSS per container's supervising process, 20 running"

# diff
PYR_DIFF = "pyreconcile diff"


def diff_case(n: int, state: str) -> str:
    return f"N={n} objects: {state}"


# pull
PYR_PULL_API = "pyreconcile pull (engine API)"
PYR_PULL_CLI = "pyreconcile image pull"
PYR_FETCH = "pyreconcile download only (engine API)"
SKOPEO_COPY = "skopeo copy docker:// → oci: (no unpack)"
DOCKER_PULL = "docker pull"
PYR_UNPACK = "pyreconcile unpacker (engine API)"
TAR_X = "tar -xzf"
PULL_CASE = "cold pull, ready to run (download, verify, unpack)"
FETCH_CASE = "cold download and verify only (no unpack)"
PULL_PHASE_CASE = "engine API pull: every blob downloaded (the unpack overlaps)"
UNPACK_CASE = "unpack the 5 layers from local gzip files"

# daemon
PYR_DAEMON = "pyreconcile daemon (watching 50)"
PYR_DAEMON_APPLY = "pyreconcile apply through the daemon"
DAEMON_EDIT_CASE = "file edit → the changed container replaced and running (50 watched)"
DAEMON_REPAIR_CASE = "a killed container: exit detected → running again (self-heal)"
DAEMON_IDLE_CASE = "idle daemon, 50 containers watched: CPU seconds per second (1 core = 1)"
DAEMON_NOOP_CASE = "no-op re-apply of 50 through the daemon"

"""``start``: one container running ``/bin/true`` — create → start → wait → delete.

Contestants, all from the same busybox rootfs, each in a private network
namespace with only loopback (pyreconcile's default; ``--network none`` for
docker and podman; the default spec's new netns for the bundle runtimes):

- pyreconcile (shim path): the engine API in this warm process, as ``apply``
  drives it — ``create_container``, ``start_container`` (spawns a
  ``python -I -S`` shim that runs the builtin OCI runtime in-process),
  ``wait_container``, ``remove_container``. Its phases are kept as extra cases.
- ``pyreconcile-runc run``, ``runc run``, ``crun run`` on an OCI bundle (crun in a
  mount namespace without the cgroup2 view on a hybrid host);
- ``docker run --rm`` against the private dockerd, ``podman run --rm``.
"""

from __future__ import annotations

import functools
import time

from bench import context, images, names, proc, results
from bench.engines import oci, pyrec
from bench.suites import common
from runtime import client, errors

__all__ = ["ShimPath", "run"]

SUITE = "start"


class ShimPath:
    """pyreconcile's engine API, warm, one fresh container per cycle."""

    name = names.PYR_SHIM

    def __init__(self, ctx: context.Context) -> None:
        self._engine = pyrec.Pyreconcile(ctx.ws, "start")
        self._engine.import_image(ctx.rootfs.tar, images.IMAGE)
        self._rt = self._engine.api()
        self._n = 0

    def cycle(self) -> dict[str, float]:
        self._n += 1
        name = f"start-{self._n}"
        t0 = time.perf_counter()
        self._rt.create_container(
            client.ContainerConfig(name=name, image=images.IMAGE, command=("/bin/true",))
        )
        t1 = time.perf_counter()
        self._rt.start_container(name)
        t2 = time.perf_counter()
        info = self._rt.wait_container(name)
        t3 = time.perf_counter()
        if info.exit_code != 0:
            raise proc.CommandFailed(f"/bin/true exited {info.exit_code} ({info.status})")
        # remove_container can meet a shim that is still exiting after wait
        # (FailedPrecondition: rootfs busy); retry until it is gone, and count it
        retries = 0
        deadline = time.monotonic() + 10.0
        while True:
            try:
                self._rt.remove_container(name, force=True)
                break
            except errors.FailedPrecondition:
                retries += 1
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.002)
        t4 = time.perf_counter()
        return {
            "total": t4 - t0,
            "create": t1 - t0,
            "start": t2 - t1,
            "wait": t3 - t2,
            "delete": t4 - t3,
            "remove retries": float(retries),
        }

    def close(self) -> list[str]:
        return self._engine.close()


class CliRun:
    """A peer's ``run --rm`` command, timed from the harness."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.name = name
        self._argv = argv
        self._env = env

    def cycle(self) -> dict[str, float]:
        return {"total": proc.timed(self._argv, env=self._env, timeout=120)}

    def close(self) -> list[str]:
        return []


def _bundle(ctx: context.Context, name: str, peer: str | None, label: str) -> oci.BundleRuntime:
    binary = pyrec.binary("pyreconcile-runc") if peer is None else ctx.peer(peer).path or peer
    spec = [pyrec.binary("pyreconcile-runc"), "spec"]
    runner: oci.Runner = oci.LocalRunner()
    if peer == "crun":
        ctx.peer("unshare")
        runner = oci.NsRunner(ctx.ws.path("oci-crun") + "/nsrunner.log")
    try:
        return oci.BundleRuntime(ctx.ws, name, binary, label, ctx.rootfs.directory, spec, runner)
    except Exception:
        runner.close()
        raise


def _docker(ctx: context.Context) -> CliRun:
    d = ctx.dockerd()
    argv = d.cli("run", "--rm", "--network", "none", images.IMAGE, "/bin/true")
    return CliRun(names.DOCKER_RUN, argv, d.env())


def _podman(ctx: context.Context) -> CliRun:
    p = ctx.podman()
    argv = p.cli(
        "run", "--rm", "--network", "none", "--cgroup-parent", f"/{p.cgroup_parent}",
        images.IMAGE, "/bin/true",
    )  # fmt: skip
    return CliRun(names.PODMAN_RUN, argv, p.env())


def run(ctx: context.Context) -> list[results.CaseResult]:
    v = functools.partial(common.versions, ctx)
    entries = [
        common.Entry(names.PYR_SHIM, True, lambda: ShimPath(ctx)),
        common.Entry(names.PYR_RUNC, True, lambda: _bundle(ctx, names.PYR_RUNC, None, "pyrunc")),
        common.Entry(
            names.RUNC, False, lambda: _bundle(ctx, names.RUNC, "runc", "runc"), v("runc")
        ),
        common.Entry(
            names.CRUN, False, lambda: _bundle(ctx, names.CRUN, "crun", "crun"), v("crun")
        ),
        common.Entry(names.DOCKER_RUN, False, lambda: _docker(ctx), v("dockerd")),
        common.Entry(names.PODMAN_RUN, False, lambda: _podman(ctx), v("podman")),
    ]
    sizes = ctx.sizes
    ran = common.run_entries(ctx, entries, sizes.start_runs, sizes.start_warmup, SUITE)
    cases = [common.case(SUITE, names.START_CASE, "s", ran, "total")]
    for phase in ("create", "start", "wait", "delete"):
        cases.append(
            common.case(
                SUITE,
                f"phase of the shim path: {phase}",
                "s",
                ran,
                phase,
                names=[names.PYR_SHIM],
            )
        )
    retries = ran[names.PYR_SHIM].samples.get("remove retries", [])
    if any(retries):
        ctx.notes.append(
            f"start: remove_container right after wait_container failed with 'rootfs busy' "
            f"(shim still exiting) in {sum(1 for r in retries if r)} of {len(retries)} runs "
            "and was retried; the retries are inside the measured time"
        )
    return cases

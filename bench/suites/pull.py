"""``pull``: a cold pull of one multi-layer image from a loopback registry, and
the unpack of its layers alone.

The image (``bench.pullimage``: 5 gzip layers, ~52 MB compressed, ~85 MB and
~2 800 entries uncompressed) is generated, pushed once with skopeo to a private
``docker-registry`` on 127.0.0.1, then every contestant pulls it cold (nothing
of it stored locally; the registry's files are in the page cache for everyone
alike; after each cycle, untimed, everything is cleaned up and ``sync`` writes
back what the cycle left dirty, so no contestant pays for another's
writeback), interleaved:

- **pyreconcile pull (engine API)**: ``pull_image(ref)`` on an engine opened
  once in this warm process (``client.open_local``), as ``apply`` drives it:
  resolve, download the blobs verified into the content store (3 at a time),
  unpack each layer into its snapshot as soon as it and the layers below it
  are there (diff_id checked, the snapshot synced before it is committed),
  record the image. The time until every blob is downloaded is kept as a
  phase (the unpack overlaps it). Afterwards (not timed) ``remove_image``
  deletes the image, its blobs and its snapshots, and the content store is
  checked empty.
- **pyreconcile image pull**: the same through the CLI, interpreter start
  included; ``image rm`` afterwards (not timed).
- **pyreconcile download only**: resolve and download the blobs verified into a
  fresh content store, unpack nothing (``registry.Registries.fetch``): the
  like-for-like row for skopeo.
- **skopeo copy**: ``docker://…`` to a fresh ``oci:`` layout directory. It
  verifies and stores the compressed blobs and **does not unpack**.
- **docker pull** against the harness's private dockerd (a loopback registry is
  insecure-by-default for dockerd): downloads, verifies and unpacks into its
  overlay2 store, like pyreconcile; ``docker rmi`` afterwards (not timed).

The unpack case takes the same layer blobs from local files: pyreconcile's
unpacker in this process (``unpack.unpack`` per layer, each into its own fresh
directory, the lower ones as parents, each layer inflated on a thread and the
next one ahead, as the image store does; no snapshot bookkeeping, no sync) against
``tar -xzf`` per layer into fresh directories (GNU tar as root keeps owners and
modes; it does not map whiteouts, verify a diff_id or guard against hostile
entries).
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from typing import BinaryIO

from bench import context, names, proc, pullimage, results
from bench.engines import pyrec
from bench.suites import common

__all__ = ["run"]

SUITE = "pull"
PYR_API = names.PYR_PULL_API
PYR_CLI = names.PYR_PULL_CLI
PYR_FETCH = names.PYR_FETCH
SKOPEO = names.SKOPEO_COPY
DOCKER = names.DOCKER_PULL
PYR_UNPACK = names.PYR_UNPACK
TAR = names.TAR_X
PULL_CASE = names.PULL_CASE
FETCH_CASE = names.FETCH_CASE
PHASE_CASE = names.PULL_PHASE_CASE
UNPACK_CASE = names.UNPACK_CASE


class _Image:
    """The registry and the pushed image, shared by the contestants of one run."""

    def __init__(self, ctx: context.Context) -> None:
        for name in ("docker-registry", "skopeo"):
            ctx.peer(name)
        ctx.log("  building the pull image")
        self.image = pullimage.build(ctx.ws)
        self.tmp = ctx.ws.path("pull", "tmp")
        self.registry = pullimage.start_registry(ctx.ws, ctx.peers["docker-registry"].path or "")
        try:
            pullimage.push(self.image, self.registry, ctx.peers["skopeo"].path or "", self.tmp)
        except BaseException:
            self.registry.stop()
            raise
        self.ref = self.registry.reference()

    def close(self) -> list[str]:
        return self.registry.stop()


def _settle() -> None:
    """After a cycle, not timed: write back what it left dirty (and what its cleanup
    deleted), so the next contestant does not pay for this one's writeback."""
    os.sync()


def _blobs_left(root: str) -> list[str]:
    found = []
    for top, _, files in os.walk(os.path.join(root, "content", "blobs")):
        found += [os.path.join(top, f) for f in files]
    return found


class PyrApi:
    name = PYR_API

    def __init__(self, ctx: context.Context, image: _Image) -> None:
        self._ref = image.ref
        self._engine = pyrec.Pyreconcile(ctx.ws, "pull-api")
        self._rt = self._engine.api()

    def cycle(self) -> dict[str, float]:
        downloaded: list[float] = []
        start = time.perf_counter()

        def progress(event: object) -> None:
            if getattr(event, "action", "") in ("downloaded", "exists"):
                downloaded.append(time.perf_counter())

        self._rt.pull_image(self._ref, progress=progress)
        took = time.perf_counter() - start
        self._rt.remove_image(self._ref)
        left = _blobs_left(self._engine.root)
        if self._rt.list_images() or left:
            raise proc.CommandFailed(f"the pull is not cold: left after image rm: {left[:3]}")
        _settle()
        return {"pull": took, "downloaded": max(downloaded) - start}

    def close(self) -> list[str]:
        return self._engine.close()


class PyrCli:
    name = PYR_CLI

    def __init__(self, ctx: context.Context, image: _Image) -> None:
        self._ref = image.ref
        self._engine = pyrec.Pyreconcile(ctx.ws, "pull-cli")

    def cycle(self) -> dict[str, float]:
        env = self._engine.env()
        took = proc.timed(
            self._engine.cli("image", "pull", "--progress", "quiet", self._ref), env=env
        )
        proc.run(self._engine.cli("image", "rm", self._ref), env=env)
        left = _blobs_left(self._engine.root)
        if left:
            raise proc.CommandFailed(f"the pull is not cold: left after image rm: {left[:3]}")
        _settle()
        return {"pull": took}

    def close(self) -> list[str]:
        return self._engine.close()


class PyrFetch:
    """Download and verify only, into a fresh content store each time."""

    name = PYR_FETCH

    def __init__(self, ctx: context.Context, image: _Image) -> None:
        from runtime.engine import registry

        self._ref = image.ref
        self._base = ctx.ws.path("pull", "fetch")
        self._registries = registry.Registries(
            registry.RegistryOptions.from_env(), os.path.join(self._base, "cache")
        )

    def cycle(self) -> dict[str, float]:
        from runtime.engine import content

        directory = tempfile.mkdtemp(prefix="content-", dir=self._base)
        try:
            start = time.perf_counter()
            store = content.LocalContentStore(directory)
            self._registries.fetch(self._ref, store=store)
            took = time.perf_counter() - start
            if len(store.list()) < 3:
                raise proc.CommandFailed(f"download only stored {store.list()}")
        finally:
            shutil.rmtree(directory)
        _settle()
        return {"pull": took}

    def close(self) -> list[str]:
        self._registries.close()
        return []


class Skopeo:
    name = SKOPEO

    def __init__(self, ctx: context.Context, image: _Image) -> None:
        self._binary = ctx.peers["skopeo"].path or "skopeo"
        self._ref = image.ref
        self._tmp = image.tmp
        self._base = ctx.ws.path("pull", "skopeo")

    def cycle(self) -> dict[str, float]:
        directory = tempfile.mkdtemp(prefix="layout-", dir=self._base)
        try:
            took = proc.timed(
                [
                    self._binary, "--tmpdir", self._tmp, "copy", "--quiet",
                    "--src-tls-verify=false", f"docker://{self._ref}",
                    f"oci:{directory}:{pullimage.TAG}",
                ]
            )  # fmt: skip
        finally:
            shutil.rmtree(directory)
        _settle()
        return {"pull": took}

    def close(self) -> list[str]:
        return []


class DockerPull:
    name = DOCKER

    def __init__(self, ctx: context.Context, image: _Image) -> None:
        self._d = ctx.dockerd()
        self._env = self._d.env()
        self._ref = image.ref

    def cycle(self) -> dict[str, float]:
        took = proc.timed(self._d.cli("pull", "-q", self._ref), env=self._env, timeout=300)
        proc.run(self._d.cli("rmi", self._ref), env=self._env)
        _settle()
        return {"pull": took}

    def close(self) -> list[str]:
        try:
            proc.run(self._d.cli("rmi", "-f", self._ref), env=self._env, check=False)
        except proc.CommandFailed as exc:
            return [f"docker rmi: {exc}"]
        return []


class _UnpackBase:
    def __init__(self, ctx: context.Context, image: _Image, label: str) -> None:
        self._layers = [layer.path for layer in image.image.layers]
        self._base = ctx.ws.path("pull", label)

    def close(self) -> list[str]:
        return []


class PyrUnpack(_UnpackBase):
    name = PYR_UNPACK

    def __init__(self, ctx: context.Context, image: _Image) -> None:
        super().__init__(ctx, image, "unpack-pyr")
        self._diff_ids = [layer.diff_id for layer in image.image.layers]

    def cycle(self) -> dict[str, float]:
        from runtime.engine import tarstream, unpack

        directory = tempfile.mkdtemp(prefix="layers-", dir=self._base)
        ahead: list[tarstream.Prefetch] = []
        try:
            lower: list[str] = []
            start = time.perf_counter()
            for index, path in enumerate(self._layers):
                dest = os.path.join(directory, str(index))
                os.mkdir(dest)
                if not ahead:
                    ahead.append(tarstream.Prefetch(_opener(path)))
                current = ahead[-1]
                if index + 1 < len(self._layers):  # as ImageStore.unpack_layers does
                    ahead.append(tarstream.Prefetch(_opener(self._layers[index + 1])))
                summary = unpack.unpack(current, dest, parents=lower[::-1])
                current.close()
                if summary.diff_id != self._diff_ids[index]:
                    raise proc.CommandFailed(f"layer {index} unpacked to {summary.diff_id}")
                lower.append(dest)
            took = time.perf_counter() - start
        finally:
            for prefetch in ahead:
                prefetch.close()
            shutil.rmtree(directory)
        _settle()
        return {"unpack": took}


def _opener(path: str) -> Callable[[], BinaryIO]:
    return lambda: open(path, "rb")  # closed by Prefetch.close


class Tar(_UnpackBase):
    name = TAR

    def __init__(self, ctx: context.Context, image: _Image) -> None:
        super().__init__(ctx, image, "unpack-tar")
        self._binary = ctx.peer("tar").path or "tar"

    def cycle(self) -> dict[str, float]:
        directory = tempfile.mkdtemp(prefix="layers-", dir=self._base)
        try:
            took = 0.0
            for index, path in enumerate(self._layers):
                dest = os.path.join(directory, str(index))
                os.mkdir(dest)
                took += proc.timed([self._binary, "-xzf", path, "-C", dest])
        finally:
            shutil.rmtree(directory)
        _settle()
        return {"unpack": took}


def run(ctx: context.Context) -> list[results.CaseResult]:
    v = functools.partial(common.versions, ctx)
    runs, warmup = ctx.sizes.pull_runs, ctx.sizes.pull_warmup
    try:
        image = _Image(ctx)
    except (context.Unavailable, proc.CommandFailed) as exc:
        reason = str(exc)
        ctx.problems.append(f"pull: no image to pull: {reason}")
        return [
            results.CaseResult(
                SUITE, PULL_CASE, "s", [results.ContestantResult(PYR_API, True, "missing",
                                                                 reason=reason)]
            )
        ]  # fmt: skip
    try:
        note = image.image.describe()

        def entry(name: str, ours: bool, cls: type, version: str = "") -> common.Entry:
            return common.Entry(name, ours, lambda: cls(ctx, image), version)

        pulls = common.run_entries(
            ctx,
            [
                entry(PYR_API, True, PyrApi),
                entry(PYR_CLI, True, PyrCli),
                entry(PYR_FETCH, True, PyrFetch),
                entry(SKOPEO, False, Skopeo, v("skopeo")),
                entry(DOCKER, False, DockerPull, v("dockerd")),
            ],
            runs,
            warmup,
            SUITE,
        )
        unpacks = common.run_entries(
            ctx,
            [entry(PYR_UNPACK, True, PyrUnpack), entry(TAR, False, Tar, v("tar"))],
            runs,
            warmup,
            SUITE,
        )
    finally:
        ctx.problems.extend(image.close())
    return [
        common.case(
            SUITE, PULL_CASE, "s", pulls, "pull", [PYR_API, PYR_CLI, DOCKER, SKOPEO],
            note=f"{note}. skopeo stores the compressed blobs and does not unpack: its ratio "
            "here compares a pull that unpacks with one that does not",
        ),
        common.case(
            SUITE, FETCH_CASE, "s", pulls, "pull", [PYR_FETCH, SKOPEO],
            note="both resolve the tag, download the config and the 5 layers in parallel, "
            "check every size and sha256 and keep the compressed blobs on disk",
        ),
        common.case(SUITE, PHASE_CASE, "s", pulls, "downloaded", [PYR_API]),
        common.case(SUITE, UNPACK_CASE, "s", unpacks, "unpack"),
    ]  # fmt: skip

"""Pull an image: resolve, download verified blobs in parallel, unpack, record.

1. **Resolve** the reference to one manifest: an index (OCI or Docker list) is
   followed to the first entry for the wanted platform (default: the host's;
   attestation entries never match), nested indexes too, each document
   verified against the descriptor that named it (``distribution``).
2. **Check** the manifest before downloading anything: config and layer media
   types this engine can use, the config small enough to be JSON.
3. **Download** the config, then the layers, ``options.parallel`` at a time,
   into the content store, which hashes and counts while it writes and keeps
   a blob only when its size and digest match; blobs already present are not
   fetched again. A broken connection resumes with ``Range`` (``download``).
4. **Unpack** each layer as soon as it and the layers below it are in the
   content store, while the others still download (the layers already here
   are unpacked in one go, so the next one is inflated ahead while one is
   written: ``ImageStore.unpack_layers``): its uncompressed sha256
   (read to EOF) must equal its ``rootfs.diff_ids`` entry, and it becomes one
   committed snapshot per layer chain (a layer shared with another image is
   unpacked once). Then **record** with ``ImageStore.import_from_content``,
   which checks everything again and names the image: only when everything
   succeeded.

All of it runs under ``ImageStore.importing()``, so a concurrent ``image
prune`` cannot delete blobs that are written but not yet recorded. When the
pull fails, the blobs it left are collected afterwards: no partial image
remains (a retry downloads them again, as after ``docker pull`` is cancelled
and the daemon prunes).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses

from runtime import client, errors
from runtime.engine import content, images, oci_layout, platforms
from runtime.engine.registry import distribution, download, options
from runtime.engine.registry import progress as progress_mod
from schemas import reference as references


@dataclasses.dataclass(frozen=True)
class Resolved:
    reference: references.Reference
    digest: str  # what the reference names (an index or the manifest)
    manifest: distribution.Fetched
    parsed: oci_layout.Manifest
    platform: str


def resolve(
    repo: distribution.Repository, ref: references.Reference, platform: platforms.Platform
) -> Resolved:
    """The manifest ``ref`` names for ``platform``, verified (no blob fetched)."""
    top = repo.get_manifest(ref.digest or ref.tag or "latest")
    fetched, chosen = top, ""
    depth = 0
    while fetched.is_index:
        depth += 1
        what = f"index {repo.name}@{fetched.digest}"
        if depth > oci_layout.MAX_INDEX_DEPTH:
            raise errors.InvalidSpec(
                f"{what}: indexes nested more than {oci_layout.MAX_INDEX_DEPTH} deep"
            )
        entries = oci_layout.parse_index(fetched.data, fetched.digest, fetched.media_type)
        entry = platforms.choose_manifest(entries, platform, f"image {ref}")
        chosen = platforms.descriptor_platform(entry)
        fetched = repo.get_manifest(entry.digest, expected=entry)
    parsed = oci_layout.parse_manifest(fetched.data, fetched.digest, fetched.media_type)
    oci_layout.check_media_types(parsed, f"image {ref} manifest {fetched.digest}")
    return Resolved(ref, top.digest, fetched, parsed, chosen)


def fetch_blob(
    repo: distribution.Repository,
    store: content.LocalContentStore,
    desc: oci_layout.Descriptor,
    opts: options.RegistryOptions,
    progress: progress_mod.Reporter,
) -> None:
    """Copy one blob into the content store, verified (skipped when present)."""
    if store.has(desc.digest) and store.size(desc.digest) == desc.size:
        progress.emit(client.ProgressEvent("exists", desc.digest, desc.size, desc.size))
        return
    progress.emit(client.ProgressEvent("downloading", desc.digest, 0, desc.size))
    on_bytes = progress.counter("downloading", desc.digest, desc.size)
    with download.BlobReader(
        repo, desc.digest, desc.size, resumes=opts.resumes, on_bytes=on_bytes
    ) as reader:
        store.write_stream(reader, desc.digest, desc.size)
    progress.emit(client.ProgressEvent("downloaded", desc.digest, desc.size, desc.size))


def _downloaded(future: concurrent.futures.Future[None]) -> bool:
    return future.done() and not future.cancelled() and future.exception() is None


def fetch(
    repo: distribution.Repository,
    ref: references.Reference,
    *,
    store: content.LocalContentStore,
    opts: options.RegistryOptions,
    platform: platforms.Platform,
    progress: client.ProgressCallback | None = None,
) -> Resolved:
    """Download and verify ``ref``'s manifest, config and layers into ``store``, and
    unpack nothing (``ctr content fetch``; what ``skopeo copy`` to a layout does).

    The blobs are not recorded as an image: they are garbage for the next
    ``collect`` unless the caller holds ``ImageStore.importing()`` and records
    them. The benchmarks use it to time the download phase of a pull alone.
    """
    report = progress_mod.Reporter(progress)
    resolved = resolve(repo, ref, platform)
    manifest = resolved.parsed
    if manifest.config.size > opts.max_json:
        raise errors.InvalidSpec(
            f"image {ref}: its config is {manifest.config.size} bytes, "
            f"over the {opts.max_json} allowed"
        )
    fetch_blob(repo, store, manifest.config, opts, report)
    config = store.read_bytes(manifest.config.digest, opts.max_json)
    what = f"image {ref} manifest {resolved.manifest.digest}"
    oci_layout.checked_diff_ids(manifest, config, what)
    with concurrent.futures.ThreadPoolExecutor(
        max_workers=max(1, opts.parallel), thread_name_prefix="pull"
    ) as pool:
        futures = [
            pool.submit(fetch_blob, repo, store, d, opts, report)
            for d in progress_mod.unique(manifest.layers)
        ]
        for future in futures:
            future.result()
    store.write_bytes(resolved.manifest.data, resolved.manifest.digest)
    return resolved


def pull(
    repo: distribution.Repository,
    ref: references.Reference,
    *,
    store: content.LocalContentStore,
    image_store: images.ImageStore,
    opts: options.RegistryOptions,
    platform: platforms.Platform,
    progress: client.ProgressCallback | None = None,
) -> images.ImageRecord:
    """Pull ``ref`` from ``repo`` into the stores; see the module docstring."""
    report = progress_mod.Reporter(progress)
    resolved = resolve(repo, ref, platform)
    manifest = resolved.parsed
    report.emit(client.ProgressEvent("resolved", str(ref), detail=resolved.manifest.digest))
    if manifest.config.size > opts.max_json:
        raise errors.InvalidSpec(
            f"image {ref}: its config is {manifest.config.size} bytes, "
            f"over the {opts.max_json} allowed"
        )
    sizes = {d.digest: d.size for d in manifest.layers}

    def unpacking(blob: str) -> None:
        report.emit(client.ProgressEvent("unpacking", blob, 0, sizes.get(blob)))

    what = f"image {ref} manifest {resolved.manifest.digest}"
    try:
        with image_store.importing():
            fetch_blob(repo, store, manifest.config, opts, report)
            config = store.read_bytes(manifest.config.digest, opts.max_json)
            diff_ids = oci_layout.checked_diff_ids(manifest, config, what)
            chain = [
                (d.digest, diff_id) for d, diff_id in zip(manifest.layers, diff_ids, strict=True)
            ]
            with concurrent.futures.ThreadPoolExecutor(
                max_workers=max(1, opts.parallel), thread_name_prefix="pull"
            ) as pool:
                futures = {
                    d.digest: pool.submit(fetch_blob, repo, store, d, opts, report)
                    for d in progress_mod.unique(manifest.layers)
                }
                try:  # unpack the layers that are here, bottom first, as they arrive
                    done = 0
                    while done < len(chain):
                        futures[chain[done][0]].result()
                        ready = done + 1
                        while ready < len(chain) and _downloaded(futures[chain[ready][0]]):
                            ready += 1
                        image_store.unpack_layers(chain[:ready], unpacking)
                        done = ready
                except BaseException:
                    for future in futures.values():
                        future.cancel()
                    raise
            store.write_bytes(resolved.manifest.data, resolved.manifest.digest)
            record = image_store.import_from_content(resolved.manifest.digest, str(ref))
    except BaseException as exc:
        try:
            image_store.collect()
        except errors.RuntimeError_ as cleanup:
            exc.add_note(f"collecting the blobs of the failed pull failed too: {cleanup}")
        raise
    report.emit(client.ProgressEvent("done", str(ref), detail=record.id))
    return record

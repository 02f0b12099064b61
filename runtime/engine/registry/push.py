"""Push an image: blobs first, the manifest last, with its exact bytes.

Each blob (the config, then the layers, ``options.parallel`` at a time) is
skipped when a ``HEAD`` finds it in the destination repository with the
right size; else it is mounted from another repository of the same registry
that the image is known under (one of its other names), which copies
nothing; else uploaded, in one ``PUT`` up to ``options.chunk_size`` bytes and
in ``PATCH`` chunks beyond. The manifest goes last, byte for byte as stored
(the registry keeps exact bytes, so its digest does not change), with its
``mediaType`` as ``Content-Type``, under the tag (or by digest). Layers are
pushed as they are stored: an image imported from a rootfs tarball has an
uncompressed layer, and it is pushed uncompressed.
"""

from __future__ import annotations

import concurrent.futures

from runtime import client, errors
from runtime.engine import content, images, oci_layout
from runtime.engine.registry import distribution, options
from runtime.engine.registry import progress as progress_mod
from schemas import reference as references


def push_blob(
    repo: distribution.Repository,
    store: content.LocalContentStore,
    desc: oci_layout.Descriptor,
    sources: list[str],
    opts: options.RegistryOptions,
    progress: progress_mod.Reporter,
) -> None:
    if repo.blob_size(desc.digest) == desc.size:
        progress.emit(client.ProgressEvent("exists", desc.digest, desc.size, desc.size))
        return
    location: str | None = None
    min_chunk = 0
    for source in sources:
        try:
            location = repo.mount_blob(desc.digest, source)
        except errors.FailedPrecondition:
            continue  # no pull access to the source: upload instead
        if location is None:
            progress.emit(
                client.ProgressEvent("mounted", desc.digest, desc.size, desc.size, detail=source)
            )
            return
        break
    if location is None:
        location, min_chunk = repo.start_upload()
    progress.emit(client.ProgressEvent("uploading", desc.digest, 0, desc.size))
    try:
        repo.upload(
            location,
            distribution.file_opener(store.path(desc.digest)),
            desc.digest,
            desc.size,
            chunk_size=opts.chunk_size,
            min_chunk=min_chunk,
            on_bytes=progress.counter("uploading", desc.digest, desc.size),
        )
    except BaseException as exc:
        try:
            repo.cancel_upload(location)
        except errors.RuntimeError_ as cleanup:
            exc.add_note(f"cancelling the upload session failed too: {cleanup}")
        raise
    progress.emit(client.ProgressEvent("uploaded", desc.digest, desc.size, desc.size))


def mount_sources(image: images.ImageRecord, dest: references.Reference) -> list[str]:
    """Other repositories of the same registry that the image is named in."""
    found: list[str] = []
    for name in image.references:
        try:
            other = references.parse_reference(name)
        except references.ReferenceError_:
            continue
        if other.domain == dest.domain and other.path != dest.path and other.path not in found:
            found.append(other.path)
    return found


def push(
    repo: distribution.Repository,
    image: images.ImageRecord,
    dest: references.Reference,
    *,
    store: content.LocalContentStore,
    opts: options.RegistryOptions,
    progress: client.ProgressCallback | None = None,
) -> str:
    """Push ``image`` to ``dest`` in ``repo``; the manifest digest the registry stored."""
    report = progress_mod.Reporter(progress)
    manifest_bytes = store.read_bytes(image.manifest_digest, opts.max_json)
    manifest = oci_layout.parse_manifest(manifest_bytes, image.manifest_digest)
    sources = mount_sources(image, dest)
    push_blob(repo, store, manifest.config, sources, opts, report)
    with concurrent.futures.ThreadPoolExecutor(
        max_workers=max(1, opts.parallel), thread_name_prefix="push"
    ) as pool:
        futures = [
            pool.submit(push_blob, repo, store, layer, sources, opts, report)
            for layer in progress_mod.unique(manifest.layers)
        ]
        try:
            for future in concurrent.futures.as_completed(futures):
                future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    digest = repo.put_manifest(
        dest.digest or dest.tag or "latest", manifest_bytes, manifest.media_type
    )
    if dest.digest and digest != dest.digest:
        raise errors.InvalidSpec(
            f"cannot push {image.id} as {dest}: its manifest digest is {digest}"
        )
    report.emit(client.ProgressEvent("done", str(dest), detail=digest))
    return digest

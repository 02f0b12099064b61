"""The host files a manifest names: resolve their paths, read env files, take digests.

Relative paths (bind-mount sources, ``envFrom`` entries, an Image's
``import.path``) are relative to the directory of the manifest that names
them, as in Compose, with ``~`` expanded; the manifest that comes out holds the
absolute paths, so the planner and the engine never depend on the current
directory.

Each referenced regular file gets a ``sha256:`` digest (an OCI layout directory:
the digest of its ``index.json``, which names every blob by digest), so that a
change to an env file or a bind-mounted config file shows up as a change of
the desired state (DESIGN §3: "the hash covers the content of files the spec
references"). Bind-mounted *directories* are not hashed: they are data, not
configuration, and can be large.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping

from reconciler.load import envfile, inputs, problems, validate, yamltree
from schemas import manifests

__all__ = ["Resolved", "resolve_files"]


@dataclasses.dataclass
class Resolved:
    manifest: validate.Manifest
    env_from: dict[str, str] = dataclasses.field(default_factory=dict)
    file_digests: dict[str, str] = dataclasses.field(default_factory=dict)
    problems: list[problems.Problem] = dataclasses.field(default_factory=list)


def resolve_files(
    manifest: validate.Manifest,
    source: inputs.Input,
    positions: yamltree.Positions,
    environ: Mapping[str, str],
) -> Resolved:
    """``manifest`` with absolute host paths, its env files read and its files digested."""
    if isinstance(manifest, manifests.ContainerManifest):
        return _container(manifest, source, positions, environ)
    if isinstance(manifest, manifests.ImageManifest):
        return _image(manifest, source, positions, environ)
    return Resolved(manifest)


def _absolute(path: str, base_dir: str, environ: Mapping[str, str]) -> str:
    return os.path.normpath(os.path.join(base_dir, inputs.expand_home(path, environ)))


def _shown(path: str, source: inputs.Input) -> str:
    """How to show a referenced file: next to the manifest as the user named it."""
    if os.path.isabs(path) or path.startswith("~") or source.display == inputs.STDIN:
        return path
    return os.path.normpath(os.path.join(os.path.dirname(source.display), path))


def _missing(path: str, absolute: str, what: str, advice: str) -> str:
    shown = path if path == absolute else f"{path} ({absolute})"
    return f"{what} {shown} does not exist: {advice}"


def _container(
    manifest: manifests.ContainerManifest,
    source: inputs.Input,
    positions: yamltree.Positions,
    environ: Mapping[str, str],
) -> Resolved:
    result = Resolved(manifest)
    spec = manifest.spec
    env_from: list[str] = []
    for index, written in enumerate(spec.env_from):
        path: yamltree.Path = ("spec", "envFrom", index)
        absolute = _absolute(written, source.base_dir, environ)
        env_from.append(absolute)
        if not os.path.isfile(absolute):
            result.problems.append(
                problems.Problem(
                    positions.value(path),
                    yamltree.path_text(path),
                    _missing(written, absolute, "env file", "create it or fix the path")
                    if not os.path.exists(absolute)
                    else f"env file {written} is not a regular file",
                )
            )
            continue
        text, error = inputs.read_text(absolute, _shown(written, source))
        if error is not None:
            result.problems.append(error)
            continue
        assert text is not None
        values, errors = envfile.parse_env(text, _shown(written, source))
        result.problems.extend(errors)
        result.env_from.update(values)
        result.file_digests[absolute] = inputs.file_digest(absolute)
    mounts = []
    for index, mount in enumerate(spec.mounts):
        if mount.type != "bind" or mount.source is None:
            mounts.append(mount)
            continue
        path = ("spec", "mounts", index, "source")
        absolute = _absolute(mount.source, source.base_dir, environ)
        mounts.append(mount.model_copy(update={"source": absolute}))
        if os.path.isfile(absolute):
            result.file_digests[absolute] = inputs.file_digest(absolute)
        elif not os.path.exists(absolute) and not mount.create_host_path:
            result.problems.append(
                problems.Problem(
                    positions.value(path),
                    yamltree.path_text(path),
                    _missing(
                        mount.source,
                        absolute,
                        "bind source",
                        "create it, fix the path, or set createHostPath: true",
                    ),
                )
            )
    new_spec = spec.model_copy(update={"mounts": mounts, "env_from": env_from})
    result.manifest = manifest.model_copy(update={"spec": new_spec})
    return result


def _image(
    manifest: manifests.ImageManifest,
    source: inputs.Input,
    positions: yamltree.Positions,
    environ: Mapping[str, str],
) -> Resolved:
    result = Resolved(manifest)
    imported = manifest.spec.import_
    if imported is None:
        return result
    path = ("spec", "import", "path")
    absolute = _absolute(imported.path, source.base_dir, environ)
    if os.path.isdir(absolute):
        index = os.path.join(absolute, "index.json")
        if os.path.isfile(index):
            result.file_digests[absolute] = inputs.file_digest(index)
        else:
            result.problems.append(
                problems.Problem(
                    positions.value(path),
                    yamltree.path_text(path),
                    f"import path {imported.path} is a directory without index.json: "
                    "name an OCI image layout directory, or a tarball",
                )
            )
    elif os.path.isfile(absolute):
        result.file_digests[absolute] = inputs.file_digest(absolute)
    else:
        result.problems.append(
            problems.Problem(
                positions.value(path),
                yamltree.path_text(path),
                _missing(imported.path, absolute, "import path", "build or copy it there first"),
            )
        )
    new_spec = manifest.spec.model_copy(
        update={"import_": imported.model_copy(update={"path": absolute})}
    )
    result.manifest = manifest.model_copy(update={"spec": new_spec})
    return result

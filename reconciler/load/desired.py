"""The loader's result: the desired stack, one validated object per document.

Plain frozen dataclasses around the pydantic manifests, carrying what the
planner needs besides the spec: where each object was written (for messages),
the directory its relative paths were resolved against, the merged ``envFrom``
values, and the digests of every host file the spec references (so that
editing an env file or a bind-mounted config file changes the desired state).
"""

from __future__ import annotations

import dataclasses

from reconciler.load import problems, validate

__all__ = ["DesiredStack", "LoadedObject"]


@dataclasses.dataclass(frozen=True)
class LoadedObject:
    """One object of the stack.

    ``manifest`` has every relative host path made absolute. ``env_from`` is the
    merge of the Container's ``spec.envFrom`` files, later files winning; the
    container's own ``spec.env`` wins over it (Compose's rule for ``env_file`` and
    ``environment``): merging the two is the planner's business, so that a plan
    can say which of them changed. ``file_digests`` maps absolute paths to
    ``sha256:<hex>``: env files, bind sources that are regular files, Image
    import tarballs (an OCI layout directory: its ``index.json``).
    """

    manifest: validate.Manifest
    location: problems.SourceLocation
    base_dir: str
    env_from: dict[str, str] = dataclasses.field(default_factory=dict)
    file_digests: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def kind(self) -> str:
        return self.manifest.kind

    @property
    def name(self) -> str:
        return self.manifest.metadata.name


@dataclasses.dataclass(frozen=True)
class DesiredStack:
    """Every object of one stack, in the order of the documents.

    ``files`` are the manifest files read (absolute paths; ``-`` for stdin),
    ``env_file`` the ``.env`` file used for interpolation if there was one (a
    watch loop watches both, besides the keys of each object's
    ``file_digests``), and ``warnings`` what did not stop the load but should
    be shown (an unset variable replaced by an empty string).
    """

    name: str
    objects: tuple[LoadedObject, ...]
    files: tuple[str, ...]
    warnings: tuple[problems.Problem, ...] = ()
    env_file: str | None = None

    def of_kind(self, kind: str) -> list[LoadedObject]:
        return [o for o in self.objects if o.kind == kind]

    def get(self, kind: str, name: str) -> LoadedObject | None:
        for obj in self.objects:
            if obj.kind == kind and obj.name == name:
                return obj
        return None

"""The loader's DesiredStack → the planner's DesiredState.

Resolves each container's ``image`` to a normalised reference: the name of an
Image object of the stack means that object's reference; anything else is a
reference itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reconciler.plan import model
from schemas import manifests
from schemas import reference as references

if TYPE_CHECKING:
    from reconciler.load import DesiredStack


def desired_state(stack: DesiredStack) -> model.DesiredState:
    images: dict[str, model.DesiredImage] = {}
    networks: dict[str, model.DesiredNetwork] = {}
    volumes: dict[str, model.DesiredVolume] = {}
    containers: dict[str, model.DesiredContainer] = {}
    for obj in stack.objects:
        m = obj.manifest
        if isinstance(m, manifests.ImageManifest):
            source = None
            if m.spec.import_ is not None:
                source = obj.file_digests.get(m.spec.import_.path)
            images[m.metadata.name] = model.DesiredImage(
                name=m.metadata.name, reference=m.reference, spec=m.spec, source_digest=source
            )
        elif isinstance(m, manifests.NetworkManifest):
            networks[m.metadata.name] = model.DesiredNetwork(
                m.metadata.name, m.spec, dict(m.metadata.labels)
            )
        elif isinstance(m, manifests.VolumeManifest):
            volumes[m.metadata.name] = model.DesiredVolume(
                m.metadata.name, m.spec, dict(m.metadata.labels)
            )
    for obj in stack.objects:
        m = obj.manifest
        if isinstance(m, manifests.ContainerManifest):
            image = images.get(m.spec.image)
            ref = image.reference if image else references.normalize_reference(m.spec.image)
            containers[m.metadata.name] = model.DesiredContainer(
                name=m.metadata.name,
                spec=m.spec,
                metadata_labels=dict(m.metadata.labels),
                image_ref=ref,
                env_from=dict(obj.env_from),
                file_digests=dict(obj.file_digests),
            )
    suspended = frozenset(
        (o.manifest.kind, o.manifest.metadata.name)
        for o in stack.objects
        if o.manifest.metadata.suspend
    )
    return model.DesiredState(
        stack=stack.name,
        images=images,
        networks=networks,
        volumes=volumes,
        containers=containers,
        suspended=suspended,
    )

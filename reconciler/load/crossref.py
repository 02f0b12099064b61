"""Checks across documents: unique names, references that resolve, no dependency cycles.

Names are collected from every document whose ``kind`` and ``metadata.name``
can be read, valid or not, so that one broken Network document does not also
make every container that uses it report "unknown network". References are
checked from every Container whose ``networks``, ``mounts`` and ``dependsOn``
lists are well-formed, even when another of its fields is not, so that one
run reports both kinds of mistakes.

* ``spec.networks[].name``: a Network of the stack, or the built-ins ``host``
  and ``none``.
* ``spec.mounts[]`` of ``type: volume`` with a ``source``: a Volume of the stack
  (anonymous volumes have no source).
* ``spec.dependsOn[].name``: another Container of the stack; the graph has no
  cycle (each cycle is reported once, as ``a -> b -> a``).
* ``spec.image``: an Image object when it equals one's name, a reference
  otherwise; nothing to check here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import pydantic

from reconciler.load import problems, validate, yamltree
from schemas import manifests

__all__ = ["BUILTIN_NETWORKS", "Entry", "check_references"]

BUILTIN_NETWORKS = ("host", "none")


@dataclasses.dataclass(frozen=True)
class Entry:
    """What the cross checks need from one document (references: Containers only)."""

    kind: str | None
    name: str | None
    positions: yamltree.Positions
    networks: tuple[manifests.NetworkAttachment, ...] = ()
    mounts: tuple[manifests.Mount, ...] = ()
    depends_on: tuple[manifests.Dependency, ...] = ()

    @classmethod
    def of(
        cls, data: Any, positions: yamltree.Positions, manifest: validate.Manifest | None
    ) -> Entry:
        """The entry of one document: from its manifest, else from what can be read."""
        if manifest is not None:
            if not isinstance(manifest, manifests.ContainerManifest):
                return cls(manifest.kind, manifest.metadata.name, positions)
            spec = manifest.spec
            return cls(
                manifest.kind,
                manifest.metadata.name,
                positions,
                tuple(spec.networks),
                tuple(spec.mounts),
                tuple(spec.depends_on),
            )
        data = data if isinstance(data, dict) else {}
        kind, metadata = data.get("kind"), data.get("metadata")
        name = metadata.get("name") if isinstance(metadata, dict) else None
        entry = cls(
            kind if isinstance(kind, str) else None,
            name if isinstance(name, str) else None,
            positions,
        )
        spec = data.get("spec")
        if entry.kind != "Container" or entry.name is None or not isinstance(spec, dict):
            return entry
        return dataclasses.replace(
            entry,
            networks=_partial(_NETWORKS, spec.get("networks")),
            mounts=_partial(_MOUNTS, spec.get("mounts")),
            depends_on=_partial(_DEPENDS_ON, spec.get("dependsOn")),
        )


_NETWORKS = pydantic.TypeAdapter(list[manifests.NetworkAttachment])
_MOUNTS = pydantic.TypeAdapter(list[manifests.Mount])
_DEPENDS_ON = pydantic.TypeAdapter(list[manifests.Dependency])


def _partial(adapter: pydantic.TypeAdapter[list[Any]], value: Any) -> tuple[Any, ...]:
    """One list field of a Container that failed validation, if that list is valid."""
    if value is None:
        return ()
    try:
        return tuple(adapter.validate_python(value, by_alias=True, by_name=False))
    except pydantic.ValidationError:
        return ()


def check_references(entries: Sequence[Entry]) -> list[problems.Problem]:
    found: list[problems.Problem] = []
    defined: dict[str, dict[str, Entry]] = {kind: {} for kind in manifests.KINDS}
    for entry in entries:
        if entry.kind not in defined or entry.name is None:
            continue
        first = defined[entry.kind].get(entry.name)
        if first is None:
            defined[entry.kind][entry.name] = entry
            continue
        found.append(
            problems.Problem(
                entry.positions.value(("metadata", "name")),
                "metadata.name",
                f"duplicate {entry.kind} {entry.name!r}: also defined at "
                f"{first.positions.value(('metadata', 'name'))}; names are unique per kind "
                "in a stack",
            )
        )
    containers = [e for e in entries if e.kind == "Container" and e.name is not None]
    for entry in containers:
        found.extend(_container(entry, defined))
    found.extend(_cycles(containers, set(defined["Container"])))
    return found


def _unknown(what: str, name: str, kind: str, names: list[str]) -> str:
    """``unknown network 'backnd', did you mean 'backend'? (Networks in the stack: …)``."""
    choices = names + list(BUILTIN_NETWORKS) if kind == "Network" else names
    hint = problems.did_you_mean(name, choices) or f": add a {kind} named {name!r}"
    defined = f"{kind}s in the stack: {problems.format_names(names)}"
    if kind == "Network":
        defined += "; built-in: host, none"
    return f"unknown {what} {name!r}{hint} ({defined})"


def _container(entry: Entry, defined: dict[str, dict[str, Entry]]) -> list[problems.Problem]:
    me, pos = entry.name, entry.positions
    found: list[problems.Problem] = []

    def at(*path: str | int) -> tuple[problems.SourceLocation, str]:
        return pos.value(path), yamltree.path_text(path)

    # the names for a message are sorted only when there is a message: sorting
    # them for every container made a stack of 1000 quadratic (0.1 s)
    for index, attachment in enumerate(entry.networks):
        if attachment.name in defined["Network"] or attachment.name in BUILTIN_NETWORKS:
            continue
        message = _unknown("network", attachment.name, "Network", sorted(defined["Network"]))
        found.append(problems.Problem(*at("spec", "networks", index, "name"), message))
    for index, mount in enumerate(entry.mounts):
        if mount.type != "volume" or mount.source is None or mount.source in defined["Volume"]:
            continue
        message = _unknown("volume", mount.source, "Volume", sorted(defined["Volume"]))
        found.append(problems.Problem(*at("spec", "mounts", index, "source"), message))
    for index, dependency in enumerate(entry.depends_on):
        where = at("spec", "dependsOn", index, "name")
        if dependency.name == me:
            found.append(
                problems.Problem(*where, f"container {me!r} depends on itself: remove this entry")
            )
        elif dependency.name not in defined["Container"]:
            others = sorted(set(defined["Container"]) - {me})
            message = _unknown("container", dependency.name, "Container", others)
            found.append(problems.Problem(*where, message))
    return found


def _cycles(containers: list[Entry], names: set[str]) -> list[problems.Problem]:
    """One problem per dependency cycle found by a depth-first search (in name order)."""
    by_name: dict[str, Entry] = {}
    edges: dict[str, list[tuple[int, str]]] = {}
    for entry in containers:
        me = entry.name
        assert me is not None
        if me in by_name:
            continue  # a duplicate, reported already
        by_name[me] = entry
        edges[me] = [
            (index, dep.name)
            for index, dep in enumerate(entry.depends_on)
            if dep.name in names and dep.name != me
        ]
    found: list[problems.Problem] = []
    seen_cycles: set[tuple[str, ...]] = set()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in sorted(edges):
        if root in state:
            continue
        # iterative depth-first search: a chain of a thousand containers must not
        # hit Python's recursion limit
        path: list[str] = [root]
        todo = [iter(edges[root])]
        state[root] = 1
        while todo:
            step = next(todo[-1], None)
            if step is None:
                todo.pop()
                state[path.pop()] = 2
                continue
            nxt = step[1]
            if nxt not in edges:
                continue  # a container that did not validate
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt) :]
                start = cycle.index(min(cycle))
                cycle = cycle[start:] + cycle[:start]
                if tuple(cycle) not in seen_cycles:
                    seen_cycles.add(tuple(cycle))
                    found.append(_cycle_problem(cycle, by_name, edges))
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                todo.append(iter(edges[nxt]))
    return found


def _cycle_problem(
    cycle: list[str], by_name: dict[str, Entry], edges: dict[str, list[tuple[int, str]]]
) -> problems.Problem:
    first, second = cycle[0], cycle[1 % len(cycle)]
    index = next(i for i, name in edges[first] if name == second)
    path = ("spec", "dependsOn", index, "name")
    shown = " -> ".join([*cycle, cycle[0]])
    return problems.Problem(
        by_name[first].positions.value(path),
        yamltree.path_text(path),
        f"dependency cycle {shown}: remove one of these dependsOn entries",
    )

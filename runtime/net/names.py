"""Names of what the network layer creates on the host, and how it marks them.

Several engines may share one host (every test has its own root and cgroup
parent), so everything host-wide carries the engine's *tag*:

- the nftables table is ``inet <tag>``; the tag is ``PYRECONCILE_NFT_TABLE`` when
  set, else the cgroup parent with every character outside ``[A-Za-z0-9_]``
  replaced by ``_``, and, for an engine whose root is not the default one, ``_``
  and 8 hex digits of a hash of its root (two instances with their own roots
  never share a table). The default engine's table is ``inet pyreconcile``;
- interface names have at most 15 characters, too few for a tag, so a link's
  name is a prefix and 12 hex digits of a hash over the tag and the object's
  ids (unique per engine), and its *alias* (``ip link`` shows it; up to 255
  characters) says whose it is: ``pyreconcile:<tag>:<network id[:12]>[:<container
  id[:12]>]``. Leak checks and drift checks find our links by that alias.

Prefixes: ``prb`` bridge, ``prv`` host end of a veth, ``prx`` VXLAN,
``prm`` a macvlan before it moves into its container.
"""

from __future__ import annotations

import hashlib
import os
import re

from runtime.engine import layout

ALIAS_PREFIX = "pyreconcile:"
TABLE_ENV = "PYRECONCILE_NFT_TABLE"
_UNSAFE = re.compile(r"[^A-Za-z0-9_]")
_TABLE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


def engine_tag(cgroup_parent: str, root: str | None = None) -> str:
    """The tag of the engine with this cgroup parent and persistent root."""
    explicit = os.environ.get(TABLE_ENV)
    if explicit:
        if not _TABLE.match(explicit):
            raise ValueError(
                f"{TABLE_ENV}={explicit!r} is not a valid nftables table name: "
                "use a letter, then letters, digits or '_' (at most 64)"
            )
        return explicit
    tag = _UNSAFE.sub("_", cgroup_parent.strip("/")) or "pyreconcile"
    if not tag[0].isalpha():
        tag = "p" + tag
    if root is not None and os.path.abspath(root) != layout.DEFAULT_ROOT:
        return f"{tag[:55]}_{hashlib.sha256(os.path.abspath(root).encode()).hexdigest()[:8]}"
    return tag[:64]


def _digest(*parts: str) -> str:
    return hashlib.sha256(":".join(parts).encode()).hexdigest()[:12]


def bridge_name(tag: str, network_id: str) -> str:
    return "prb" + _digest(tag, network_id)


def vxlan_name(tag: str, network_id: str) -> str:
    return "prx" + _digest(tag, network_id)


def veth_name(tag: str, network_id: str, container_id: str) -> str:
    return "prv" + _digest(tag, network_id, container_id)


def macvlan_name(tag: str, network_id: str, container_id: str) -> str:
    return "prm" + _digest(tag, network_id, container_id)


def alias(tag: str, network_id: str, container_id: str | None = None) -> str:
    text = f"{ALIAS_PREFIX}{tag}:{network_id[:12]}"
    return f"{text}:{container_id[:12]}" if container_id else text


def is_ours(link_alias: str | None, tag: str) -> bool:
    return bool(link_alias) and str(link_alias).startswith(f"{ALIAS_PREFIX}{tag}:")

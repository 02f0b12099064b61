"""Our one nftables table, rendered from the state and applied atomically.

The table (``inet <tag>``, see ``runtime.net.names``) is never edited rule by
rule. After every change (a network made or removed, a container attached or
detached) the whole table is rendered from the network rows and the endpoint
records and loaded in one ``nft -f -`` transaction that creates, deletes and
recreates it: the kernel swaps it atomically, no packet sees half a table, and
a table that was flushed or deleted out of band comes back whole (drift
repair). Established connections survive: their NAT lives in conntrack.

Every rule carries a comment naming what it is for (``masquerade:<network>``,
``port:<container>:tcp:8080``…), so a drift check compares the comments present
in each chain (``nft -j list table``) with the rendered ones, without parsing
nft's own rendering of expressions.

Chains::

    forward      filter  accept established; accept what a published port let in
                         (DNAT); accept within a bridge; drop whatever else enters a
                         network (other networks, other hosts); drop whatever leaves
                         an internal or overlay network
    raw_prerouting       drop packets from a bridge to 127.0.0.0/8 (route_localnet
                         is on for published ports on loopback; CVE-2020-8558)
    prerouting   nat     local destination → jump published (from other hosts and
    output       nat     from containers: hairpin; from the host itself, loopback too)
    published    nat     one DNAT per published port
    postrouting  nat     masquerade what leaves a bridge network for elsewhere, what the
                         host sends from 127.0.0.0/8 into a bridge, and hairpin DNAT
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from collections.abc import Iterable, Mapping

from runtime import errors

CHAINS = (
    ("forward", "type filter hook forward priority filter; policy accept;"),
    ("raw_prerouting", "type filter hook prerouting priority raw; policy accept;"),
    ("prerouting", "type nat hook prerouting priority dstnat; policy accept;"),
    ("output", "type nat hook output priority -100; policy accept;"),
    ("published", ""),
    ("postrouting", "type nat hook postrouting priority srcnat; policy accept;"),
)


@dataclasses.dataclass(frozen=True)
class Segment:
    """A network with a bridge on the host (bridge and overlay drivers)."""

    network_id: str
    bridge: str
    subnet: str
    internal: bool  # no way out: internal bridges, and overlays (no host gateway)
    outbound: bool  # masquerade to the rest of the world (bridge, not internal)


@dataclasses.dataclass(frozen=True)
class Forward:
    """One published port: host (ip, port) → container (address, port)."""

    container_id: str
    protocol: str
    host_ip: str  # "0.0.0.0": every local address
    host_port: int
    address: str
    container_port: int


@dataclasses.dataclass(frozen=True)
class Rule:
    chain: str
    text: str
    comment: str


def rules(segments: Iterable[Segment], forwards: Iterable[Forward]) -> list[Rule]:
    """Every rule of the table, in order. Pure."""
    segments = sorted(segments, key=lambda s: s.bridge)
    out = [
        Rule("forward", "ct state established,related accept", "established"),
        Rule("forward", "ct status dnat accept", "published"),
    ]
    for s in segments:
        tag = s.network_id[:12]
        out.append(
            Rule("forward", f'iifname "{s.bridge}" oifname "{s.bridge}" accept', f"intra:{tag}")
        )
        out.append(Rule("forward", f'oifname "{s.bridge}" drop', f"inbound:{tag}"))
        if s.internal:
            out.append(Rule("forward", f'iifname "{s.bridge}" drop', f"internal:{tag}"))
        if s.outbound:
            out.append(
                Rule(
                    "raw_prerouting",
                    f'iifname "{s.bridge}" ip daddr 127.0.0.0/8 drop',
                    f"localnet:{tag}",
                )
            )
    out.append(Rule("prerouting", "fib daddr type local jump published", "published"))
    out.append(Rule("output", "fib daddr type local jump published", "published"))
    for f in sorted(forwards, key=lambda f: (f.protocol, f.host_port, f.host_ip)):
        match = "" if f.host_ip in ("0.0.0.0", "") else f"ip daddr {f.host_ip} "
        out.append(
            Rule(
                "published",
                f"{match}meta l4proto {f.protocol} th dport {f.host_port} "
                f"dnat ip to {f.address}:{f.container_port}",
                f"port:{f.container_id[:12]}:{f.protocol}:{f.host_ip}:{f.host_port}",
            )
        )
    for s in segments:
        if not s.outbound:
            continue
        tag = s.network_id[:12]
        out.append(
            Rule(
                "postrouting",
                f'ip saddr {s.subnet} oifname != "{s.bridge}" masquerade',
                f"masquerade:{tag}",
            )
        )
        out.append(
            Rule(
                "postrouting",
                f'oifname "{s.bridge}" ip saddr 127.0.0.0/8 masquerade',
                f"loopback:{tag}",
            )
        )
        out.append(
            Rule(
                "postrouting",
                f'oifname "{s.bridge}" ct status dnat ip saddr {s.subnet} masquerade',
                f"hairpin:{tag}",
            )
        )
    return out


def render(table: str, segments: Iterable[Segment], forwards: Iterable[Forward]) -> str:
    """The nft script that replaces the table with exactly these rules. Pure."""
    by_chain: dict[str, list[Rule]] = {name: [] for name, _ in CHAINS}
    for rule in rules(segments, forwards):
        by_chain[rule.chain].append(rule)
    lines = [f"table inet {table} {{}}", f"delete table inet {table}", f"table inet {table} {{"]
    for name, hook in CHAINS:
        lines.append(f"  chain {name} {{")
        if hook:
            lines.append(f"    {hook}")
        lines.extend(f'    {r.text} comment "{r.comment}"' for r in by_chain[name])
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def expected(segments: Iterable[Segment], forwards: Iterable[Forward]) -> dict[str, set[str]]:
    """Chain → the comments its rules must carry."""
    found: dict[str, set[str]] = {name: set() for name, _ in CHAINS}
    for rule in rules(segments, forwards):
        found[rule.chain].add(rule.comment)
    return found


def _nft() -> str:
    binary = shutil.which("nft") or shutil.which("nft", path="/usr/sbin:/sbin")
    if binary is None:
        raise errors.Unavailable("nft is not installed: install the nftables package")
    return binary


def _run(args: list[str], what: str, script: str | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            [_nft(), *args], input=script, capture_output=True, text=True, timeout=30
        )
    except OSError as exc:
        raise errors.Unavailable(f"{what}: cannot run nft: {exc}") from None
    except subprocess.TimeoutExpired:
        raise errors.Transient(f"{what}: nft did not answer within 30 s") from None


def apply(table: str, segments: Iterable[Segment], forwards: Iterable[Forward]) -> None:
    """Load the rendered table, or delete it when there is nothing to filter."""
    segments = list(segments)
    if not segments:
        delete(table)
        return
    script = render(table, segments, forwards)
    proc = _run(["-f", "-"], f"load nftables table inet {table}", script)
    if proc.returncode != 0:
        raise errors.Terminal(f"nftables refused table inet {table}: {proc.stderr.strip()}")


def delete(table: str) -> None:
    proc = _run(["delete", "table", "inet", table], f"delete nftables table inet {table}")
    if proc.returncode != 0 and "No such file" not in proc.stderr:
        raise errors.Terminal(f"cannot delete nftables table inet {table}: {proc.stderr.strip()}")


def observe(table: str) -> dict[str, set[str]] | None:
    """Chain → comments of its rules, as loaded now; None when the table is absent."""
    proc = _run(["-j", "list", "table", "inet", table], f"list nftables table inet {table}")
    if proc.returncode != 0:
        if "No such file" in proc.stderr:
            return None
        raise errors.Unavailable(f"cannot list nftables table inet {table}: {proc.stderr.strip()}")
    try:
        items = json.loads(proc.stdout).get("nftables", [])
    except ValueError:
        raise errors.Unavailable(f"nft printed no JSON for table inet {table}") from None
    found: dict[str, set[str]] = {}
    for item in items:
        if "chain" in item:
            found.setdefault(str(item["chain"].get("name")), set())
        elif "rule" in item:
            rule = item["rule"]
            found.setdefault(str(rule.get("chain")), set()).add(str(rule.get("comment", "")))
    return found


def differences(
    want: Mapping[str, set[str]], have: Mapping[str, set[str]] | None, table: str
) -> list[str]:
    """What is missing from the loaded table, in words. Pure."""
    if have is None:
        return [f"nftables table inet {table} is missing"] if any(want.values()) or want else []
    problems = []
    for chain, comments in want.items():
        if chain not in have:
            problems.append(f"nftables chain {chain} of table inet {table} is missing")
            continue
        missing = sorted(comments - have[chain])
        if missing:
            problems.append(
                f"nftables table inet {table}: {len(missing)} rule(s) missing from chain "
                f"{chain} ({', '.join(missing[:4])}{'…' if len(missing) > 4 else ''})"
            )
    return problems

"""The nftables table as data: rules rendered from networks and published ports,
and drift found by comparing rule comments."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from runtime.net import nft

A = nft.Segment("a" * 64, "prbaaaa", "10.89.0.0/24", internal=False, outbound=True)
SEALED = nft.Segment("b" * 64, "prbbbbb", "10.89.1.0/24", internal=True, outbound=False)
WEB = nft.Forward("c" * 64, "tcp", "0.0.0.0", 49153, "10.89.0.2", 80)
LOCAL = nft.Forward("c" * 64, "udp", "127.0.0.1", 9090, "10.89.0.2", 90)


def test_render_is_one_atomic_replacement_of_our_table() -> None:
    text = nft.render("pyreconcile_t", [A, SEALED], [WEB, LOCAL])
    lines = text.splitlines()
    assert lines[:3] == [
        "table inet pyreconcile_t {}",
        "delete table inet pyreconcile_t",
        "table inet pyreconcile_t {",
    ]
    assert 'meta l4proto tcp th dport 49153 dnat ip to 10.89.0.2:80 comment "port:' in text
    assert "ip daddr 127.0.0.1 meta l4proto udp th dport 9090 dnat ip to 10.89.0.2:90" in text
    assert 'ip saddr 10.89.0.0/24 oifname != "prbaaaa" masquerade' in text
    assert 'iifname "prbbbbb" drop comment "internal:bbbbbbbbbbbb"' in text
    assert "10.89.1.0/24" not in text  # an internal network is never masqueraded
    assert 'oifname "prbaaaa" drop comment "inbound:aaaaaaaaaaaa"' in text


def test_rule_order_accepts_established_and_published_before_isolation() -> None:
    forward = [r.comment for r in nft.rules([A, SEALED], [WEB]) if r.chain == "forward"]
    assert forward[:2] == ["established", "published"]
    assert forward.index("intra:aaaaaaaaaaaa") < forward.index("inbound:aaaaaaaaaaaa")


def test_differences_name_what_is_missing() -> None:
    want = nft.expected([A], [WEB])
    assert nft.differences(want, want, "t") == []
    assert nft.differences(want, None, "t") == ["nftables table inet t is missing"]
    flushed: dict[str, set[str]] = {chain: set() for chain in want}
    problems = nft.differences(want, flushed, "t")
    assert any("missing from chain postrouting (hairpin:" in p for p in problems), problems
    no_chain = {k: v for k, v in want.items() if k != "published"}
    assert nft.differences(want, no_chain, "t") == [
        "nftables chain published of table inet t is missing"
    ]


@pytest.mark.skipif(shutil.which("nft") is None, reason="needs nft")
def test_nft_accepts_the_rendered_script() -> None:
    """``nft --check`` parses and validates without loading anything."""
    proc = subprocess.run(
        ["nft", "--check", "-f", "-"],
        input=nft.render("pyreconcile_check", [A, SEALED], [WEB, LOCAL]),
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0 and "Operation not permitted" in proc.stderr:
        pytest.skip("nft --check needs CAP_NET_ADMIN")
    assert proc.returncode == 0, proc.stderr

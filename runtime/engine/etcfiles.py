"""/etc/hostname, /etc/hosts and /etc/resolv.conf for a container.

The engine writes them in the container's own directory and the bundle binds
them in (Docker does the same), so an image's files are never edited and a
container cannot change what the next start gets.
"""

from __future__ import annotations

import os

from runtime import errors

HOST_RESOLV_CONF = "/etc/resolv.conf"


def hosts(hostname: str, host_network: bool, extra: tuple[tuple[str, str], ...] = ()) -> str:
    lines = [
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "fe00::0\tip6-localnet",
        "ff00::0\tip6-mcastprefix",
        "ff02::1\tip6-allnodes",
        "ff02::2\tip6-allrouters",
    ]
    if not host_network and not extra:
        lines.append(f"127.0.1.1\t{hostname}")
    lines.extend(f"{address}\t{names}" for address, names in extra)
    return "\n".join(lines) + "\n"


def resolv_conf(host_network: bool, source: str = HOST_RESOLV_CONF) -> str:
    """The host's resolv.conf; in a private network namespace without the
    loopback name servers, which would not answer there (Docker's rule)."""
    try:
        with open(source, encoding="utf-8", errors="replace") as f:
            text = f.read(64 * 1024)
    except FileNotFoundError:
        return ""
    if host_network:
        return text
    kept = []
    for line in text.splitlines():
        fields = line.split()
        if (
            len(fields) >= 2
            and fields[0] == "nameserver"
            and (fields[1].startswith("127.") or fields[1] == "::1")
        ):
            continue
        kept.append(line)
    return "\n".join(kept) + "\n"


def write_all(
    directory: str,
    hostname: str,
    host_network: bool,
    extra_hosts: tuple[tuple[str, str], ...] = (),
) -> dict[str, str]:
    """Write the three files; return container path → host file, for the bundle.

    ``extra_hosts``: (address, "name alias …") lines, e.g. the container's own
    addresses on its networks and its peers' (what the network layer knows).
    """
    files = {
        "/etc/hostname": hostname + "\n",
        "/etc/hosts": hosts(hostname, host_network, extra_hosts),
        "/etc/resolv.conf": resolv_conf(host_network),
    }
    result = {}
    for target, text in files.items():
        path = os.path.join(directory, os.path.basename(target))
        tmp = path + ".tmp"
        with errors.map_os_errors(f"write {path}"):
            with open(tmp, "w") as f:
                f.write(text)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        result[target] = path
    return result

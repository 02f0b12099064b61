"""Time commands inside a private mount namespace (stdlib only, run as a script).

crun 1.8.1 refuses the hybrid cgroup layout (cgroup2 at /sys/fs/cgroup/unified
next to the v1 controllers). The harness starts this script once, as
``unshare -m --propagation private python -I nsrunner.py --umount PATH``: it
unmounts the cgroup2 view in its own namespace (the host keeps it), then reads
one JSON request per line on stdin (``{"argv": [...], "cwd": ...}``), runs the
command and answers one JSON line (``{"rc", "seconds", "stderr"}``). Timing is
taken here, the same way the harness times the other contestants (perf_counter
around subprocess.run), so crun pays no extra exec for the namespace.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "--umount":
        subprocess.run(["umount", argv[1]], check=True, stdin=subprocess.DEVNULL)
    elif argv:
        print("usage: nsrunner.py [--umount PATH]", file=sys.stderr)
        return 2
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        start = time.perf_counter()
        out = subprocess.run(
            request["argv"],
            cwd=request.get("cwd"),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=request.get("timeout", 300),
            check=False,
        )
        seconds = time.perf_counter() - start
        answer = {"rc": out.returncode, "seconds": seconds, "stderr": out.stderr[-2000:]}
        print(json.dumps(answer), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

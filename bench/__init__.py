"""Benchmarks: pyreconcile side by side with runc, crun, dockerd, docker-compose and podman.

Every speed and memory claim of the project is a ratio against a peer measured in
the same run on the same machine. ``python -m bench run [SUITE…] [--quick]``
prepares identical inputs for every contestant (one busybox-static rootfs,
imported into each engine), runs the contestants interleaved (A B A B …) after
warm-up rounds, and writes ``bench/results/latest.json`` and a Markdown table.

Layout:

- pure parts (unit-tested): ``stats`` (median/min/max), ``interleave`` (the
  schedule and the loop that runs it), ``results`` (the JSON document),
  ``report`` (Markdown tables), ``goals`` (the issue's targets, evaluated);
- host parts: ``proc`` (commands, timing, daemons), ``host`` (mounts, cgroups,
  processes, PSS), ``workspace`` (throw-away directories and the final leak
  check), ``peers`` (detection and installation), ``images`` (the rootfs);
- ``engines/``: one module per engine, each started and cleaned up privately;
- ``suites/``: ``start``, ``apply``, ``memory``, ``diff``.

Benchmarks are not part of the test run; only the pure parts have unit tests.
"""

from __future__ import annotations

__all__: list[str] = []

"""The shim: one long-lived process per container (DESIGN.md §5).

The engine starts it with :func:`runtime.shim.launch.spawn_shim` (forked by the
run root's warm fork server, :mod:`runtime.shim.forkserver`, or exec'd); it
double-forks, becomes a child subreaper with PPID 1, creates and starts the
container through the OCI runtime (builtin library or an external binary),
holds the container's stdio and writes its logs (:mod:`runtime.shim.logs`),
applies the restart policy, records the exit status in the bundle, and serves
a small unix-socket protocol (:mod:`runtime.shim.protocol`,
:class:`runtime.shim.client.ShimClient`: state, wait, kill, stop, shutdown,
exec with resize (:mod:`runtime.shim.execs`), logs with follow).
:mod:`runtime.shim.restore` tells the engine, after a restart of its own, what became of each shim.

This ``__init__`` re-exports nothing on purpose: the shim runs under
``python -I -S`` and every import here would be paid by every shim. Import the
submodules (``from runtime.shim import launch``).
"""

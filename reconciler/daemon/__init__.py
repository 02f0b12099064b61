"""The daemon: the REST API on a unix socket and the reconcile loop (GitOps, self-heal).

Modules: ``server`` (HTTP on the socket, the route table), ``api_*`` (routes),
``codec`` and ``api_types`` (the wire format), ``client`` and ``remote`` (the
CLI's side), ``controller`` with ``workqueue``, ``flap``, ``sources``,
``gitsource``, ``watch`` and ``exits`` (the loop), ``events``, ``metrics``,
``status``, ``config``, ``systemd`` and ``main`` (the process). Importing the
package imports none of them: the CLI pays only for what it uses.
"""

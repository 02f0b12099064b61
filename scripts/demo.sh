#!/bin/sh
# Set up pyreconcile and apply the demo stack (manifests/demo), offline: its
# image is made from the host's busybox-static.
set -eu
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/python scripts/busybox_rootfs.py manifests/demo/busybox-rootfs.tar
.venv/bin/pyreconcile apply -f manifests/demo
P="$(pwd)/.venv/bin/pyreconcile"
cat <<EOT

The demo stack is running. Look at it with:
  $P ps                              # the containers, their state and restarts
  $P logs demo/client                # client fetches web by name every 5 s
  curl -s http://127.0.0.1:8080/       # the page web serves, published on loopback
  $P network inspect demo/backend    # the bridge network: subnet, containers, drift
  $P diff -f manifests/demo; echo \$?  # 0: the host matches the manifests
Change something (GREETING in manifests/demo/stack.yaml), then diff and apply again.
Remove it all with:
  $P delete -f manifests/demo --volumes
EOT

"""Container networking on this host: namespaces, links, addresses and nftables.

The pieces, each one concept (DESIGN.md §6):

- ``names``     what our links and our nftables table are called, and how a link
                is marked as ours (an interface alias naming the engine)
- ``netns``     network namespaces kept alive by a bind mount under the run root,
                and netlink sockets opened inside one (no fork: a helper thread)
- ``links``     bridges, veth pairs, macvlan and VXLAN links through pyroute2
- ``ipam``      address allocation per network, persisted as JSON under a lock
- ``subnets``   host routes, overlap checks and the default address pool
- ``nft``       our one nftables table: rendered from the state, applied atomically
- ``endpoints`` what a container has on its networks (one JSON record per container)
- ``hostsfile`` /etc/hosts lines for peers, rewritten in place when peers change

``runtime.engine.networks.Networks`` ties them to the metadata store and the
container lifecycle. pyroute2 costs ~90 ms to import, so only the modules that
talk netlink import it, and only when they run.
"""

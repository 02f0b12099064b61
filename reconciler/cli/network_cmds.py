"""The ``network`` commands: ls, inspect, create, rm, prune, connect, disconnect.

A network is named as the runtime knows it (``demo_backend``), as
``STACK/NAME`` (``demo/backend``), or by its manifest name when one stack
has it (or with ``--stack``). ``ls`` and ``inspect`` show the containers
attached now (started ones) and what is missing on the host (drift, which
``pyreconcile apply`` repairs).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import click

from reconciler.cli import context as ctx_mod
from reconciler.cli.inspect_cmds import table
from runtime import client, errors

BUILTIN = ("host", "none")


def resolve_network(runtime: client.RuntimeClient, name: str, stack: str | None) -> str:
    """The runtime name of the network ``name`` (see the module doc)."""
    if "/" in name:
        stack, name = name.split("/", 1)
    if name in BUILTIN and not stack:
        return name
    objects = [(n.name, dict(n.labels)) for n in runtime.list_networks()]
    return ctx_mod.resolve_name("network", objects, name, stack, "pyreconcile network ls")


def published_by_container(
    runtime: client.RuntimeClient, containers: list[client.ContainerInfo]
) -> dict[str, list[client.PortBinding]]:
    """Container id → its published ports as bound now (asked only when one publishes)."""
    if not any(c.config.ports for c in containers):
        return {}
    found: dict[str, list[client.PortBinding]] = {}
    for binding in runtime.list_published_ports():
        found.setdefault(binding.container_id, []).append(binding)
    return found


def ports_text(bindings: list[client.PortBinding]) -> str:
    """Docker's PORTS column: ``0.0.0.0:49153->80/tcp, …``."""
    return ", ".join(
        f"{b.host_ip}:{b.host_port}->{b.container_port}/{b.protocol}" for b in bindings
    )


def ports_json(bindings: list[client.PortBinding]) -> list[dict[str, Any]]:
    return [
        {
            "containerPort": b.container_port,
            "protocol": b.protocol,
            "hostIP": b.host_ip,
            "hostPort": b.host_port,
        }
        for b in bindings
    ]


def _json(info: client.NetworkInfo) -> dict[str, Any]:
    data = dataclasses.asdict(info)
    data["options"] = dict(info.options)
    data["labels"] = dict(info.labels)
    data["annotations"] = dict(info.annotations)
    data["healthy"] = not info.problems
    return data


def _options(pairs: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    found = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r}: expected KEY=VALUE", param_hint="--opt")
        found[key] = value
    return client.frozen_map(found)


def register(
    cli: click.Group,
    runtime_errors: Callable[[], Any],
    fail: Callable[[str], Any],
) -> None:
    output = click.option("--output", "-o", type=click.Choice(["table", "json"]), default="table")
    stack_opt = click.option(
        "--stack", help="the stack of a network or container named by its manifest name"
    )

    @cli.group()
    def network() -> None:
        """Manage networks."""

    @network.command("ls")
    @output
    @click.pass_obj
    def network_ls(context: ctx_mod.Context, output: str) -> None:
        """List networks, their containers and any drift on the host."""
        with runtime_errors():
            items = context.runtime.list_networks()
        if output == "json":
            click.echo(json.dumps([_json(n) for n in items], indent=2))
            return
        rows = [
            [
                n.name,
                n.driver,
                n.subnet or "-",
                str(len(n.endpoints)),
                "internal" if n.internal else "",
                f"{len(n.problems)} problem(s)" if n.problems else "ok",
            ]
            for n in items
        ]
        click.echo(table(rows, ["NAME", "DRIVER", "SUBNET", "CONTAINERS", "SCOPE", "HOST"]))

    @network.command("inspect")
    @click.argument("names", nargs=-1, required=True)
    @stack_opt
    @click.pass_obj
    def network_inspect(
        context: ctx_mod.Context, names: tuple[str, ...], stack: str | None
    ) -> None:
        """Show networks as JSON: addressing, attached containers, problems."""
        with runtime_errors():
            wanted = [resolve_network(context.runtime, n, stack) for n in names]
            by_name = {n.name: n for n in context.runtime.list_networks()}
        missing = [n for n in wanted if n not in by_name]
        if missing:
            fail(f"network {missing[0]!r} not found")
        click.echo(json.dumps([_json(by_name[n]) for n in wanted], indent=2))

    @network.command("create")
    @click.argument("name")
    @click.option(
        "-d",
        "--driver",
        type=click.Choice(["bridge", "macvlan", "overlay", "host", "none"]),
        default="bridge",
    )
    @click.option("--subnet", help="CIDR, e.g. 10.89.7.0/24 (default: a free /24)")
    @click.option("--gateway")
    @click.option("--ip-range", help="hand out addresses from this part of the subnet only")
    @click.option("--internal", is_flag=True, help="no way out of the network")
    @click.option("-o", "--opt", "opts", multiple=True, help="parent=, peers=, vni=, mtu=")
    @click.pass_obj
    def network_create(
        context: ctx_mod.Context,
        name: str,
        driver: str,
        subnet: str | None,
        gateway: str | None,
        ip_range: str | None,
        internal: bool,
        opts: tuple[str, ...],
    ) -> None:
        """Create a network outside any stack (not managed: apply leaves it alone)."""
        config = client.NetworkConfig(
            name=name,
            driver=driver,
            subnet=subnet,
            gateway=gateway,
            ip_range=ip_range,
            internal=internal,
            options=_options(opts),
        )
        with runtime_errors():
            info = context.runtime.create_network(config)
        click.echo(f"{info.name}: {info.driver} {info.subnet or ''}".rstrip())

    @network.command("rm")
    @click.argument("names", nargs=-1, required=True)
    @stack_opt
    @click.pass_obj
    def network_rm(context: ctx_mod.Context, names: tuple[str, ...], stack: str | None) -> None:
        """Remove networks (no container may use them)."""
        with runtime_errors():
            for name in names:
                runtime_name = resolve_network(context.runtime, name, stack)
                context.runtime.remove_network(runtime_name)
                click.echo(runtime_name)

    @network.command("prune")
    @click.option("-f", "--force", is_flag=True, help="do not ask for confirmation")
    @click.pass_obj
    def network_prune(context: ctx_mod.Context, force: bool) -> None:
        """Remove every network that no container uses."""
        if not force and not click.confirm(
            "remove every network that no container uses (a stack's too: its next apply "
            "creates them again)?"
        ):
            return
        with runtime_errors():
            used = {a.network for c in context.runtime.list_containers() for a in c.config.networks}
            for net in context.runtime.list_networks():
                if net.name in used or net.endpoints:
                    continue
                try:
                    context.runtime.remove_network(net.name)
                except (errors.FailedPrecondition, errors.NotFound):
                    continue
                click.echo(net.name)

    @network.command("connect")
    @click.argument("network_name", metavar="NETWORK")
    @click.argument("container")
    @click.option("--alias", "aliases", multiple=True, help="another name on this network")
    @click.option("--ip", "ipv4_address", help="a static IPv4 address on this network")
    @stack_opt
    @click.pass_obj
    def network_connect(
        context: ctx_mod.Context,
        network_name: str,
        container: str,
        aliases: tuple[str, ...],
        ipv4_address: str | None,
        stack: str | None,
    ) -> None:
        """Connect a container to a network (a running one gets its interface now).

        A container managed by a stack then differs from its manifests: the next
        apply puts it back as they say.
        """
        with runtime_errors():
            net = resolve_network(context.runtime, network_name, stack)
            info = ctx_mod.resolve_container(context.runtime, container, stack)
            context.runtime.connect_network(
                net, info.name, aliases=aliases, ipv4_address=ipv4_address
            )
        click.echo(f"{info.name}: connected to {net}")

    @network.command("disconnect")
    @click.argument("network_name", metavar="NETWORK")
    @click.argument("container")
    @stack_opt
    @click.pass_obj
    def network_disconnect(
        context: ctx_mod.Context, network_name: str, container: str, stack: str | None
    ) -> None:
        """Disconnect a container from a network (a running one loses its interface now)."""
        with runtime_errors():
            net = resolve_network(context.runtime, network_name, stack)
            info = ctx_mod.resolve_container(context.runtime, container, stack)
            context.runtime.disconnect_network(net, info.name)
        click.echo(f"{info.name}: disconnected from {net}")

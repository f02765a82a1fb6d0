"""Hosts made of network namespaces: each its own address on a private /24, joined by a
Linux bridge in the root namespace (where the soak's driver runs and reaches every host
over the bridge). Taking a host's bridge port down cuts the host off from every other
host and from the driver, while what runs inside it still reaches its own addresses.

Every name this module makes carries the run's tag (the driver's pid): namespaces
``atelier-<tag>-h<n>``, the bridge ``atb<tag>`` and its ports ``atb<tag>h<n>``. Only those
are ever changed or deleted; a run that died without tearing down (kill -9) is swept by
the next one, which kills what still runs in its namespaces.

Needs root and iproute2; ``unavailable()`` says why not otherwise.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass, field

from atelier.cli.datadir import pid_alive

NAMESPACE_PREFIX = "atelier-"
BRIDGE_PREFIX = "atb"
_OURS = re.compile(rf"^{NAMESPACE_PREFIX}(\d+)-h\d+$")
_OUR_BRIDGE = re.compile(rf"^{BRIDGE_PREFIX}(\d+)$")
SUBNETS = ipaddress.IPv4Network("10.214.0.0/16")
"""Where each run picks a free /24: private space this machine does not route."""


def run_ip(*args: str, namespace: str | None = None) -> str:
    """``ip ARGS`` (inside ``namespace`` when given); CalledProcessError with its stderr."""
    prefix = ["ip", "netns", "exec", namespace] if namespace else []
    done = subprocess.run([*prefix, "ip", *args], check=True, capture_output=True, text=True)
    return done.stdout


def unavailable() -> str | None:
    """None when namespaces and a bridge can be made here, else the reason they cannot."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "no `ip` command (iproute2)"
    probe = f"{NAMESPACE_PREFIX}{os.getpid()}-h0"
    bridge = f"{BRIDGE_PREFIX}{os.getpid()}p"
    try:
        run_ip("netns", "add", probe)
        run_ip("link", "add", bridge, "type", "bridge")
    except subprocess.CalledProcessError as exc:
        return f"`ip` refused to make a namespace or a bridge: {exc.stderr.strip()}"
    finally:
        subprocess.run(["ip", "link", "delete", bridge], capture_output=True)
        subprocess.run(["ip", "netns", "delete", probe], capture_output=True)
    return None


@dataclass(frozen=True)
class Host:
    """One host: a namespace, its address, and the bridge port that links it."""

    number: int
    namespace: str
    address: str
    link: str
    """The bridge's end of the host's link (in the root namespace)."""

    @property
    def name(self) -> str:
        return f"host{self.number}"

    def wrap(self) -> list[str]:
        """The prefix that runs a command inside this host."""
        return ["ip", "netns", "exec", self.namespace]


@dataclass
class HostNetwork:
    """``count`` hosts on a bridge; ``build`` makes them, ``teardown`` removes them."""

    count: int
    tag: str = field(default_factory=lambda: str(os.getpid()))
    hosts: list[Host] = field(default_factory=list)
    subnet: ipaddress.IPv4Network | None = None

    @property
    def bridge(self) -> str:
        return f"{BRIDGE_PREFIX}{self.tag}"

    @property
    def gateway(self) -> str:
        """The bridge's own address: the driver's, as the hosts see it."""
        assert self.subnet is not None
        return str(self.subnet.network_address + 1)

    def build(self) -> list[Host]:
        sweep_stale()
        self.subnet = free_subnet()
        try:
            run_ip("link", "add", self.bridge, "type", "bridge")
            run_ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
            run_ip("link", "set", self.bridge, "up")
            for number in range(1, self.count + 1):
                self.hosts.append(self._host(number))
        except BaseException:
            self.teardown()
            raise
        return self.hosts

    def _host(self, number: int) -> Host:
        assert self.subnet is not None
        host = Host(
            number,
            f"{NAMESPACE_PREFIX}{self.tag}-h{number}",
            str(self.subnet.network_address + 10 + number),
            f"{self.bridge}h{number}",
        )
        inside = f"{self.bridge}n{number}"
        run_ip("netns", "add", host.namespace)
        run_ip("link", "add", host.link, "type", "veth", "peer", "name", inside)
        run_ip("link", "set", inside, "netns", host.namespace)
        run_ip("link", "set", host.link, "master", self.bridge)
        run_ip("link", "set", host.link, "up")
        for args in (
            ("addr", "add", f"{host.address}/24", "dev", inside),
            ("link", "set", inside, "up"),
            ("link", "set", "lo", "up"),
        ):
            run_ip(*args, namespace=host.namespace)
        return host

    def cut(self, host: Host) -> None:
        """The host's link down: it reaches no other host, and nothing reaches it."""
        run_ip("link", "set", host.link, "down")

    def restore(self, host: Host) -> None:
        run_ip("link", "set", host.link, "up")

    def teardown(self) -> None:
        """Kill what still runs in our namespaces, then delete them and the bridge (their
        links go with them). Safe to call twice, and after a failed build."""
        for namespace in _namespaces():
            if namespace.startswith(f"{NAMESPACE_PREFIX}{self.tag}-h"):
                _remove_namespace(namespace)
        subprocess.run(["ip", "link", "delete", self.bridge], capture_output=True)
        self.hosts.clear()


def free_subnet() -> ipaddress.IPv4Network:
    """A /24 of ``SUBNETS`` that no address or route of this machine touches."""
    taken = _routes_and_addresses()
    for subnet in SUBNETS.subnets(new_prefix=24):
        if not any(subnet.overlaps(other) for other in taken):
            return subnet
    raise RuntimeError(f"no free /24 left in {SUBNETS}")


def _routes_and_addresses() -> list[ipaddress.IPv4Network]:
    found: list[ipaddress.IPv4Network] = []
    text = run_ip("-4", "route", "show", "table", "all") + run_ip("-4", "-o", "addr")
    for word in re.findall(r"\d+\.\d+\.\d+\.\d+(?:/\d+)?", text):
        with contextlib.suppress(ValueError):
            found.append(ipaddress.IPv4Network(word, strict=False))
    return found


def sweep_stale() -> None:
    """Remove the namespaces and bridges of runs whose driver is gone (killed with -9)."""
    for namespace in _namespaces():
        match = _OURS.match(namespace)
        if match and not pid_alive(int(match.group(1))):
            _remove_namespace(namespace)
    for line in run_ip("-o", "link", "show", "type", "bridge").splitlines():
        name = line.split(":", 2)[1].strip().split("@", 1)[0]
        match = _OUR_BRIDGE.match(name)
        if match and not pid_alive(int(match.group(1))):
            subprocess.run(["ip", "link", "delete", name], capture_output=True)


def _namespaces() -> list[str]:
    return [line.split()[0] for line in run_ip("netns", "list").splitlines() if line.strip()]


def _remove_namespace(namespace: str) -> None:
    pids = subprocess.run(
        ["ip", "netns", "pids", namespace], capture_output=True, text=True
    ).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
    subprocess.run(["ip", "netns", "delete", namespace], capture_output=True)

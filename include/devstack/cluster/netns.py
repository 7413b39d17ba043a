"""Test hosts on one machine: a network namespace per host, joined by veth pairs to a bridge.

Each host has its own IP address, ports and hostname, and an ``/etc/hosts`` naming every
other host (``ip netns exec`` mounts ``/etc/netns/<ns>/hosts`` over ``/etc/hosts``), so the
compose file's URLs (``postgres:5432``, ``http://s3:8333``) work unchanged. Needs root.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import psutil

NETNS_ETC = Path("/etc/netns")


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


@dataclass(frozen=True)
class Network:
    """Hosts ``prefix-<host>`` on ``<subnet>.0/24``; the machine itself is ``<subnet>.1``."""

    prefix: str
    subnet: str
    hosts: tuple[str, ...]

    @property
    def bridge(self) -> str:
        return f"{self.prefix}br"

    @property
    def gateway(self) -> str:
        return f"{self.subnet}.1"

    def namespace(self, host: str) -> str:
        return f"{self.prefix}-{host}"

    def address(self, host: str) -> str:
        return f"{self.subnet}.{self.hosts.index(host) + 2}"

    def link(self, host: str) -> str:
        """The machine's end of a host's veth pair (names are limited to 15 characters)."""
        return f"{self.prefix}v{self.hosts.index(host)}"

    def create(self, aliases: Mapping[str, Sequence[str]]) -> None:
        """Bridge, namespaces, links and hosts files; ``aliases`` adds names of a host."""
        self.destroy()
        ip("link", "add", self.bridge, "type", "bridge")
        ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")
        names = [f"{self.gateway} cluster-gateway"]
        for host in self.hosts:
            names.append(f"{self.address(host)} {' '.join([host, *aliases.get(host, ())])}")
        hosts_file = "127.0.0.1 localhost\n" + "\n".join(names) + "\n"
        for host in self.hosts:
            ns, peer = self.namespace(host), f"{self.link(host)}p"
            ip("netns", "add", ns)
            ip("link", "add", self.link(host), "type", "veth", "peer", "name", peer)
            ip("link", "set", peer, "netns", ns)
            ip("-n", ns, "link", "set", peer, "name", "eth0")
            ip("-n", ns, "addr", "add", f"{self.address(host)}/24", "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "up")
            ip("-n", ns, "link", "set", "lo", "up")
            ip("link", "set", self.link(host), "master", self.bridge, "up")
            (NETNS_ETC / ns).mkdir(parents=True, exist_ok=True)
            (NETNS_ETC / ns / "hosts").write_text(hosts_file)

    def destroy(self) -> None:
        """Remove what :meth:`create` made, even under a process that lingers on a host.

        Deleting a namespace only removes its name while a process still runs in it; the
        namespace and its link live on. Deleting the link deletes both its ends.
        """
        for host in self.hosts:
            ip("link", "delete", self.link(host), check=False)
            ip("netns", "delete", self.namespace(host), check=False)
            shutil.rmtree(NETNS_ETC / self.namespace(host), ignore_errors=True)
        ip("link", "delete", self.bridge, check=False)

    def processes(self, host: str) -> list[psutil.Process]:
        """Whatever runs on ``host`` (in its namespace), whoever started it."""
        listed = ip("netns", "pids", self.namespace(host), check=False).stdout.split()
        found = []
        for pid in listed:
            with suppress(psutil.NoSuchProcess):
                found.append(psutil.Process(int(pid)))
        return found

    def set_reachable(self, host: str, reachable: bool) -> None:
        """Pull or plug a host's cable: its processes run on, unreachable meanwhile."""
        ip("link", "set", self.link(host), "up" if reachable else "down")

    def run_on(self, host: str, argv: Sequence[str]) -> list[str]:
        """``argv`` on ``host``: in its namespace, under its own hostname."""
        return [
            "ip", "netns", "exec", self.namespace(host),
            "unshare", "--uts", "--", "sh", "-c", 'hostname "$0" && exec "$@"', host, *argv,
        ]  # fmt: skip

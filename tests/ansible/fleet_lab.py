"""A lab of workstations for `make fleet-smoke`: each host a copy of the rootfs that site.yml converged, with
its own network namespace, address and sshd (Debian's openssh-server), reached over SSH with a key.

Copies are overlay mounts (the converged tree shared read-only below, each host's changes in its own upper
folder: no gigabytes copied, and the upper folder is exactly what a run changed on the host). The controller
runs in a namespace of its own too, joined to each host by a veth pair (10.77.<n>.1 - 10.77.<n>.2/30), so
every address exists only inside namespaces this lab made; `close()` stops the lab's processes (by their ids)
and removes its namespaces, mounts and cgroup.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

SUBNET = "10.77"
CGROUP_CPU = Path("/sys/fs/cgroup/cpu")
CGROUP_V2 = Path("/sys/fs/cgroup")
ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "LANG": "C.UTF-8"}


def sh(*argv: str, timeout: float = 600, check: bool = True, **kw) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, **kw)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)[-300:]}: exit {proc.returncode}: {proc.stderr[-1500:]}")
    return proc


def chroot(
    root: Path, command: str, *, timeout: float = 600, check: bool = True
) -> subprocess.CompletedProcess:
    return sh("chroot", str(root), "/bin/sh", "-c", command, timeout=timeout, check=check, env=ENV)


@dataclass
class LabHost:
    name: str
    index: int
    root: Path  # the merged overlay: the host's file system
    upper: Path  # what changed on the host since it was copied
    netns: str
    address: str
    link: str  # the controller's end of the veth pair
    sshd: subprocess.Popen | None = None
    mounts: list[Path] = field(default_factory=list)


class Lab:
    def __init__(self, workdir: Path, base: Path, user: str) -> None:
        self.workdir, self.converged, self.user = workdir, base, user
        self.tag = f"kwf{os.getpid() % 100000}"
        self.controller = f"{self.tag}-ctl"
        self.hosts: dict[str, LabHost] = {}
        self.cgroup: Path | None = None
        self.key = workdir / "id_ed25519"
        self.known_hosts = workdir / "known_hosts"
        self.base_upper = workdir / "base-upper"
        self._namespaces: list[str] = []
        self._mounts: list[Path] = []

    # --- the shared layer: openssh-server and the user's key, once ------------------------------------------
    def prepare(self) -> None:
        sh("ip", "netns", "add", self.controller)
        self._namespaces.append(self.controller)
        sh("ip", "-n", self.controller, "link", "set", "lo", "up")
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "fleet-lab", "-f", str(self.key))
        merged = self._overlay("base", [self.converged], self.base_upper)
        # No service starts from a package's postinst inside the copy (there is no init anyway).
        policy = merged / "usr/sbin/policy-rc.d"
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
        chroot(
            merged,
            "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
            "--no-install-recommends openssh-server >/dev/null && rm -f /etc/ssh/ssh_host_*",
        )
        policy.unlink()
        ssh_dir = merged / "home" / self.user / ".ssh"
        ssh_dir.mkdir(mode=0o700, exist_ok=True)
        (ssh_dir / "authorized_keys").write_text(self.key.with_suffix(".pub").read_text())
        (ssh_dir / "authorized_keys").chmod(0o600)
        chroot(merged, f"chown -R {self.user}: /home/{self.user}/.ssh")
        self._unmount(merged)

    def _overlay(self, name: str, lowers: list[Path], upper: Path) -> Path:
        merged, work = self.workdir / name / "root", self.workdir / name / "work"
        for path in (merged, work, upper):
            path.mkdir(parents=True, exist_ok=True)
        lower = ":".join(str(p) for p in lowers)
        sh(
            "mount",
            "-t",
            "overlay",
            "overlay",
            "-o",
            f"lowerdir={lower},upperdir={upper},workdir={work}",
            str(merged),
        )
        self._mounts.append(merged)
        return merged

    def _unmount(self, path: Path) -> None:
        sh("umount", str(path), check=False)
        with contextlib.suppress(ValueError):
            self._mounts.remove(path)

    # --- hosts ---------------------------------------------------------------------------------------------
    def add_host(
        self, name: str, setup: Callable[[LabHost], None] | None = None, slow_cpu: float | None = None
    ):
        """A host: the converged tree plus the shared layer, its own host keys, namespace, address and sshd.
        `setup` changes it before sshd starts; `slow_cpu`: the share of one core its processes may use."""
        index = len(self.hosts) + 1
        upper = self.workdir / f"host{index}" / "upper"
        root = self._overlay(f"host{index}", [self.base_upper, self.converged], upper)
        host = LabHost(name, index, root, upper, f"{self.tag}-h{index}", f"{SUBNET}.{index}.2", f"c{index}")
        self.hosts[name] = host
        chroot(root, "ssh-keygen -A -q && mkdir -p /run/sshd && chmod 0755 /run/sshd")
        sh("mount", "-t", "proc", "proc", str(root / "proc"))
        self._mounts.append(root / "proc")
        if setup:
            setup(host)
        sh("ip", "netns", "add", host.netns)
        self._namespaces.append(host.netns)
        sh(
            "ip",
            "link",
            "add",
            host.link,
            "netns",
            self.controller,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            host.netns,
        )
        for ns, dev, address in (
            (self.controller, host.link, f"{SUBNET}.{index}.1"),
            (host.netns, "eth0", host.address),
        ):
            sh("ip", "-n", ns, "addr", "add", f"{address}/30", "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        log = (self.workdir / f"sshd-{index}.log").open("w")
        host.sshd = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                host.netns,
                "chroot",
                str(root),
                "/usr/sbin/sshd",
                "-D",
                "-e",
                "-o",
                f"ListenAddress={host.address}",
                "-o",
                "PasswordAuthentication=no",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=ENV,
        )
        if slow_cpu is not None:
            self._throttle(host.sshd.pid, slow_cpu)
        key = (root / "etc/ssh/ssh_host_ed25519_key.pub").read_text().split()[:2]
        with self.known_hosts.open("a") as known:
            known.write(f"{host.address} {' '.join(key)}\n")
        self._wait_listening(host)
        return host

    def _wait_listening(self, host: LabHost, limit_s: float = 30) -> None:
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            ss = sh("ip", "netns", "exec", host.netns, "ss", "-ltnH", check=False)
            if f"{host.address}:22" in ss.stdout:
                return
            if host.sshd and host.sshd.poll() is not None:
                break
            time.sleep(0.2)
        log = (self.workdir / f"sshd-{host.index}.log").read_text()[-2000:]
        raise RuntimeError(f"sshd of {host.name} did not start: {log}")

    def _throttle(self, pid: int, share: float) -> None:
        """The process and what it starts get `share` of one core: a CFS quota per 10 ms period, with cgroup
        v1's cpu controller (hybrid hierarchies, as on this project's machines) or cgroup v2's cpu.max."""
        quota = str(int(10000 * share))
        if (CGROUP_CPU / "cpu.cfs_quota_us").is_file():
            self.cgroup = CGROUP_CPU / f"{self.tag}-slow"
            self.cgroup.mkdir(exist_ok=True)
            (self.cgroup / "cpu.cfs_period_us").write_text("10000")
            (self.cgroup / "cpu.cfs_quota_us").write_text(quota)
        else:
            (CGROUP_V2 / "cgroup.subtree_control").write_text("+cpu")
            self.cgroup = CGROUP_V2 / f"{self.tag}-slow"
            self.cgroup.mkdir(exist_ok=True)
            (self.cgroup / "cpu.max").write_text(f"{quota} 10000")
        (self.cgroup / "cgroup.procs").write_text(str(pid))

    def cut(self, name: str) -> None:
        """The host's network link goes down (its end stays up: it does not notice). What its sshd started
        (the smoke test) is stopped too: the controller cannot see it any more, and in CI it would only take
        CPU from the other hosts."""
        host = self.hosts[name]
        sh("ip", "-n", self.controller, "link", "set", host.link, "down")
        self._kill_started(host)

    def _kill_started(self, host: LabHost) -> None:
        """Every process in the host's namespace but its sshd listener, by process id."""
        for pid in sh("ip", "netns", "pids", host.netns, check=False).stdout.split():
            if host.sshd is None or int(pid) != host.sshd.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)

    def inventory(self, path: Path, extra: dict[str, str]) -> Path:
        """A YAML inventory (JSON is YAML) of the lab's hosts plus `extra`: name -> address of hosts that do
        not exist."""
        ssh_args = (
            f"-o UserKnownHostsFile={self.known_hosts} -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes"
        )
        hosts = {name: host.address for name, host in self.hosts.items()} | extra
        inventory = {
            "all": {
                "vars": {
                    "ansible_user": self.user,
                    "ansible_ssh_private_key_file": str(self.key),
                    "ansible_ssh_common_args": ssh_args,
                    "ansible_python_interpreter": "/usr/bin/python3",
                },
                "children": {"lab": {"hosts": {name: {"ansible_host": a} for name, a in hosts.items()}}},
            }
        }
        path.write_text(json.dumps(inventory, indent=1))
        return path

    def netns_exec(self) -> list[str]:
        return ["ip", "netns", "exec", self.controller]

    # --- teardown ------------------------------------------------------------------------------------------
    def close(self) -> None:
        for host in self.hosts.values():
            self._kill_started(host)
            if host.sshd is not None:
                with contextlib.suppress(ProcessLookupError):
                    host.sshd.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    host.sshd.wait(timeout=10)
        for ns in reversed(self._namespaces):
            sh("ip", "netns", "del", ns, check=False)
        for path in reversed(self._mounts):
            sh("umount", "--lazy", str(path), check=False)
        if self.cgroup is not None:
            for _ in range(50):
                with contextlib.suppress(OSError):
                    self.cgroup.rmdir()
                    break
                time.sleep(0.1)
        shutil.rmtree(self.workdir / "base", ignore_errors=True)

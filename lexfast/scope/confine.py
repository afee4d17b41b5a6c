"""Kernel confinement of every child lexfast starts (issue 26): what the
kernel offers (:func:`support`) and the rules a child runs under, derived
from the session's policy (:func:`child_rules`).

A granted binary can otherwise do anything the OS lets it: ``--allow-proc
sh`` would read ``~/.ssh``, write anywhere, connect anywhere and signal the
host. So each child starts through ``lexfast-confine`` (an exec helper built
with the package, ``helper/lexfast_confine.c``), which sets
``no_new_privs``, applies a Landlock domain and, without ``net``, a seccomp
filter, then execs the target:

- files: read and execute beneath ``--allow-fs-read`` and
  ``Limits.child_read_paths`` (the system set programs need to start) and
  the target binary's directory (its prefix when that is ``.../bin``); write,
  create, remove, rename and truncate beneath ``--allow-fs-write`` (and read
  there too: a tool that writes a tree reads it back; an empty write list
  writes anywhere but does not open reading);
  ``Limits.child_devices`` (``/dev/null`` ...) read and written. An empty
  scope list stays "any" (the reference's rule): ``/``.
- network: without ``net`` no TCP bind or connect (Landlock), and no socket
  but ``AF_UNIX``/``AF_NETLINK`` (seccomp: UDP, raw, packet), no io_uring.
  With ``net`` a child reaches any host: Landlock cannot name hosts.
- signals and abstract unix sockets are scoped to the child's own domain
  (Landlock ABI 6): it cannot signal the host or another child's domain;
  ptrace outside the domain is refused by every Landlock ABI.
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform
import sys
from typing import NamedTuple

#: the helper, beside the code that starts children (built by setup.py)
HELPER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      "effects", "proc", "lexfast-confine")

_NR_LANDLOCK_CREATE_RULESET = 444  # the same number on every Linux architecture
_LANDLOCK_CREATE_RULESET_VERSION = 1
_SECCOMP_MACHINES = frozenset({"x86_64", "amd64", "aarch64", "arm64"})


class Support(NamedTuple):
    """What confinement this machine offers: the Landlock ABI (0: none),
    whether the seccomp socket filter is built for this architecture, the
    helper's path (None: not built), and ``reason`` when children cannot be
    confined at all."""

    abi: int
    seccomp: bool
    helper: str | None
    reason: str | None

    @property
    def available(self) -> bool:
        return self.reason is None

    def enforced(self) -> list[str]:
        """What a confined child is held to, in words (``lexfast info``)."""
        if not self.available:
            return []
        out = ["no_new_privs (setuid binaries cannot lift the domain)",
               "files: read/execute beneath the read scopes and the system set, "
               "write beneath the write scopes"
               + (" (rename across directories: ABI 2)" if self.abi < 2 else "")
               + (" (truncate: ABI 3)" if self.abi < 3 else ""),
               "ptrace outside its domain refused"]
        if self.abi >= 4:
            out.append("without `net`: TCP bind/connect refused (Landlock)")
        if self.seccomp:
            out.append("without `net`: sockets other than unix/netlink and io_uring "
                       "refused (seccomp)")
        if self.abi >= 6:
            out.append("signals and abstract unix sockets scoped to its own domain")
        else:
            out.append("signals NOT scoped (Landlock ABI 6 needed)")
        return out


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, 0 when it has none (or it is off)."""
    if not sys.platform.startswith("linux"):
        return 0
    libc = ctypes.CDLL(None, use_errno=True)
    abi = libc.syscall(ctypes.c_long(_NR_LANDLOCK_CREATE_RULESET), None, ctypes.c_size_t(0),
                       ctypes.c_uint32(_LANDLOCK_CREATE_RULESET_VERSION))
    return abi if abi > 0 else 0


@functools.lru_cache(maxsize=1)
def support() -> Support:
    """Probed once per process."""
    abi = landlock_abi()
    seccomp = platform.machine().lower() in _SECCOMP_MACHINES
    helper = HELPER if os.access(HELPER, os.X_OK) else None
    reason = None
    if not sys.platform.startswith("linux"):
        reason = f"Landlock is Linux only (this is {sys.platform})"
    elif abi == 0:
        reason = f"this kernel ({platform.release()}) has no Landlock (or it is disabled)"
    elif helper is None:
        reason = f"the exec helper was not built ({HELPER})"
    return Support(abi, seccomp, helper, reason)


class ChildRules(NamedTuple):
    """The Landlock and seccomp rules one child runs under. ``read`` and
    ``write`` are paths (``/`` for an empty scope list: any); ``net``:
    whether it may open network sockets."""

    read: tuple[str, ...]
    write: tuple[str, ...]
    devices: tuple[str, ...]
    net: bool

    def helper_args(self, exe: str, cwd: str | None = None) -> list[str]:
        """The helper's options for running ``exe`` (its directory, and its
        prefix when that directory is ``bin``, become readable)."""
        read = list(self.read)
        if read != ["/"]:
            full = os.path.abspath(os.path.join(cwd, exe) if cwd else exe)
            for path in (full, os.path.realpath(full)):
                d = os.path.dirname(path)
                read.append(d)
                if os.path.basename(d) == "bin":
                    read.append(os.path.dirname(d))
        args = [] if self.net else ["-n"]
        for flag, paths in (("-r", read), ("-w", self.write), ("-d", self.devices)):
            for p in dict.fromkeys(paths):
                args += [flag, p]
        return args


def _operator_paths(name: str, paths) -> tuple[str, ...]:
    if isinstance(paths, str) or not all(isinstance(p, str) and os.path.isabs(p)
                                         and "\0" not in p for p in paths):
        raise ValueError(f"Limits.{name} must be a tuple of absolute paths")
    return tuple(paths)


def child_rules(policy, limits) -> ChildRules:
    """The rules for a child of a session under ``policy`` and ``limits``.
    Raises ValueError for a malformed ``Limits.child_read_paths`` or
    ``child_devices`` (the operator's)."""
    system = _operator_paths("child_read_paths", limits.child_read_paths)
    devices = _operator_paths("child_devices", limits.child_devices)
    write = tuple(policy.write_roots) if policy.allow_fs_write else ("/",)
    # a write scope is read back too (a tool that writes a tree reads it:
    # git, make); an empty write list is "write anywhere", not "read anywhere"
    read = (*policy.read_roots, *(write if policy.allow_fs_write else ()),
            *system) if policy.allow_fs_read else ("/",)
    return ChildRules(read, write, devices, "net" in policy.allow_effects)

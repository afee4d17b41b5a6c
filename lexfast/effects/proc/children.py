"""Starting and tracking child processes (``proc.*``, ``process.*``, MCP servers).

Why not ``subprocess.Popen``: a child inherits its parent's
ignored signals and signal mask. When lexfast itself runs with SIGINT
ignored (a shell's background job, ``nohup``, a job runner) or with signals
blocked, every child would too, and ``process.kill(h, "SIGINT")`` would do
nothing. ``Popen`` cannot reset dispositions without ``preexec_fn``, which
runs Python between fork and exec and is unsafe while other threads run
(lexfast always has some). ``posix_spawn`` can: ``POSIX_SPAWN_SETSIGDEF``
with every signal and ``POSIX_SPAWN_SETSIGMASK`` with an empty set are done
by libc in the child, before exec, with no Python code involved. Python's
``os.posix_spawn`` has no ``cwd`` (``posix_spawn_file_actions_addchdir_np``)
nor ``closefrom``, so libc's is called through ctypes.

Every child starts in a new session (``POSIX_SPAWN_SETSID``; a new process
group where libc lacks it, glibc < 2.26): its pid is its process group id,
so a signal can reach everything it started (``Child.signal_group``).

Reaping and group ids. The kernel keeps a pid number allocated
while any process uses it as a pid, a process group id or a session id. So:

- while the leader is alive or an unreaped zombie, ``killpg(pid)`` can only
  reach our group;
- after the leader is reaped, the group id stays ours while at least one
  member lives; once the last member exits, the number may be handed out
  again (only after the pid counter wraps around ``pid_max``). On Linux 6.9+
  the group is signalled through the leader's pidfd
  (``PIDFD_SIGNAL_PROCESS_GROUP``), which names the kernel's group object,
  not the number: that cannot reach anyone else. Elsewhere the group is
  signalled by number only while ``group_alive`` (the last probe found
  members); the window left is a wrap-around of the whole pid space between
  that probe and the signal.

Confinement (issue 26). With ``confine`` (a ``ChildRules``, from
:func:`confinement`), posix_spawn starts the exec helper ``lexfast-confine``
instead of the target: it applies ``no_new_privs``, Landlock and seccomp
and execs the target (lexfast.scope.confine). Its failures (the target not
found, a refused domain) come back on an error pipe at descriptor 3, as
``subprocess`` reports a failed exec, and become the same OSError a direct
spawn raises.
"""

from __future__ import annotations

import collections
import ctypes
import errno as _errno
import fcntl
import os
import select
import shutil
import signal as _signal
import sys
import threading
import time

from ...errors import EffectError
from ...scope.confine import ChildRules, child_rules, support
from . import poller as _poller

# posix_spawnattr flags: the same values in glibc and musl.
_SETPGROUP = 0x02
_SETSIGDEF = 0x04
_SETSIGMASK = 0x08
_SETSID = 0x400 if sys.platform == "darwin" else 0x80  # macOS numbers it apart
#: pidfd_send_signal flag (Linux 6.9): signal the pidfd's process group.
_PIDFD_SIGNAL_PROCESS_GROUP = 4

_libc = ctypes.CDLL(None, use_errno=True)
# Opaque libc types, sized generously (glibc: attr 336, file actions 80,
# sigset 128 bytes; musl's are smaller).
_Attr = ctypes.c_char * 1024
_Actions = ctypes.c_char * 512
_Sigset = ctypes.c_char * 256

_posix_spawn = _libc.posix_spawn
_posix_spawn.argtypes = [ctypes.POINTER(ctypes.c_int), ctypes.c_char_p, ctypes.c_void_p,
                         ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
_libc.posix_spawnattr_setflags.argtypes = [ctypes.c_void_p, ctypes.c_short]
_libc.posix_spawnattr_setpgroup.argtypes = [ctypes.c_void_p, ctypes.c_int]
_libc.posix_spawn_file_actions_adddup2.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
_addchdir = getattr(_libc, "posix_spawn_file_actions_addchdir_np", None)
if _addchdir is not None:
    _addchdir.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
_addclosefrom = getattr(_libc, "posix_spawn_file_actions_addclosefrom_np", None)
if _addclosefrom is not None:
    _addclosefrom.argtypes = [ctypes.c_void_p, ctypes.c_int]

#: pidfds (Linux): not under LEXFAST_FORCE_PORTABLE, so waits and group
#: signals take the paths macOS and the BSDs have (polling, killpg)
_PIDFDS = hasattr(os, "pidfd_open") and not _poller.force_portable()
_group_pidfd_ok = _PIDFDS and hasattr(_signal, "pidfd_send_signal")


class Cancelled(Exception):
    """A wait ended because its cancel event was set (the session closed)."""


class TimeoutExpired(Exception):
    pass


def _check(rc: int, what: str, filename=None) -> None:
    if rc != 0:
        raise OSError(rc, os.strerror(rc), filename) if filename is not None \
            else OSError(rc, os.strerror(rc))


def _encode(s, what: str) -> bytes:
    b = os.fsencode(s)
    if b"\0" in b:
        raise ValueError(f"embedded null byte in {what}")
    return b


def _which(cmd: str, env_path: str | None):
    found = shutil.which(cmd, path=env_path if env_path is not None else os.defpath)
    if found is None:
        raise FileNotFoundError(_errno.ENOENT, os.strerror(_errno.ENOENT), cmd)
    return found


def confinement(policy, limits, what: str) -> ChildRules | None:
    """The rules a child of a session runs under, or None to run it
    unconfined (``Limits.confine_children`` off, or the kernel or the build
    cannot). Raises EffectError naming ``what`` (the op) when
    ``Limits.require_confinement`` is set and children cannot be confined."""
    found = support()
    if limits.confine_children and found.available:
        try:
            return child_rules(policy, limits)
        except ValueError as e:  # the operator's Limits
            raise EffectError(f"{what}: {e}") from None
    if limits.require_confinement:
        why = found.reason if found.reason is not None else "Limits.confine_children is off"
        raise EffectError(f"{what}: children must be confined (Limits.require_confinement) "
                          f"but {why}")
    return None


def spawn(argv: list, executable: str | None, *, stdin: int, stdout: int, stderr: int,
          env: dict | None = None, cwd: str | None = None,
          confine: ChildRules | None = None, defer_exec_errors: bool = False) -> Child:
    """Start ``argv`` (``argv[0]`` as the child sees it) from ``executable``
    (None: ``argv[0]``, searched on ``env``'s PATH when it has no slash), with
    the three descriptors as its stdio, default signal dispositions, an empty
    signal mask, in a new session, every other descriptor closed; under
    ``confine``'s rules through the exec helper when given. Confined with
    ``defer_exec_errors``, a failed exec of the target is not waited for
    here (one scheduling round trip less, which a loaded machine makes
    milliseconds): the child exits 127 and ``Child.exec_error()`` returns
    the OSError once it has exited. Raises
    OSError (errno; the file or directory at fault), ValueError (NUL bytes)
    or UnicodeError, like ``subprocess.Popen``."""
    args = [_encode(a, "argument") for a in argv]
    envp = None  # None: the C library's own environ (as Popen(env=None) passes it)
    if env is not None:
        envp = []
        for k, v in env.items():
            kb, vb = _encode(k, "environment"), _encode(v, "environment")
            if b"=" in kb:
                raise ValueError("illegal environment variable name")
            envp.append(kb + b"=" + vb)
    path = executable
    if path is None:
        env_path = (env if env is not None else os.environ).get("PATH")
        path = argv[0] if "/" in argv[0] else _which(argv[0], env_path)
    path_b = _encode(path, "executable")
    if confine is not None:
        helper = support().helper
        if helper is None:  # cannot happen: confinement() checked it
            raise OSError(_errno.ENOSYS, "the exec helper lexfast-confine is missing")
        args = [b"lexfast-confine", *(_encode(a, "scope path") for a in
                                      confine.helper_args(path, cwd)),
                b"--", path_b, *args]
        path_b = os.fsencode(helper)
    cwd_b = None
    if cwd is not None:
        cwd_b = _encode(cwd, "cwd")
        if _addchdir is None:
            raise OSError(_errno.ENOSYS, "this C library cannot set a child's cwd "
                          "(posix_spawn_file_actions_addchdir_np)")

    # a pipe end numbered 0-2 (the host closed its own stdio) would be
    # overwritten by an earlier dup2: move such ones above 2 first
    stdio = [stdin, stdout, stderr]
    moved = []
    try:
        for i, fd in enumerate(stdio):
            if fd < 3:
                stdio[i] = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
                moved.append(stdio[i])
        if confine is None:
            return _spawn(path_b, args, envp, stdio, cwd, cwd_b, path, None)
        return _spawn_confined(path_b, args, envp, stdio, cwd, cwd_b, path, defer_exec_errors)
    finally:
        for fd in moved:
            os.close(fd)


#: the helper's failure stages, as an OSError's text says them
_STAGES = {b"landlock": "cannot confine the child (Landlock)",
           b"seccomp": "cannot confine the child (seccomp)",
           b"usage": "cannot confine the child (helper usage)"}


def _spawn_confined(path_b, args, envp, stdio, cwd, cwd_b, path, defer: bool) -> Child:
    r, w = os.pipe2(os.O_CLOEXEC)
    try:
        if w < 4:  # above stdio and the 3 it is moved to (dup2(3, 3) keeps close-on-exec)
            w2 = fcntl.fcntl(w, fcntl.F_DUPFD_CLOEXEC, 4)
            os.close(w)
            w = w2
        child = _spawn(path_b, args, envp, stdio, cwd, cwd_b, path, w)
    except BaseException:
        os.close(r)
        os.close(w)
        raise
    os.close(w)
    if defer:
        child._report_fd = r
        child._report_path = path
        return child
    try:
        report = _read_report(r)
    finally:
        os.close(r)
    if not report:
        return child
    child.reap()  # the helper exited 127 right after writing
    child.release()
    raise _report_error(report, path)


def _read_report(fd: int) -> bytes:
    report = b""
    while True:  # EOF once the target is exec'd (the pipe is close-on-exec)
        chunk = os.read(fd, 256)
        if not chunk:
            return report
        report += chunk


def _report_error(report: bytes, path) -> OSError:
    stage, _, num = report.strip().partition(b" ")
    try:
        code = int(num)
    except ValueError:
        code = _errno.EIO
    if stage == b"exec":
        return OSError(code, os.strerror(code), path)
    return OSError(code, f"{_STAGES.get(stage, 'cannot confine the child')}: "
                   f"{os.strerror(code)}")


def _spawn(path_b, args, envp, stdio, cwd, cwd_b, path, errpipe) -> Child:
    c_argv = (ctypes.c_char_p * (len(args) + 1))(*args, None)
    if envp is None:
        c_envp = ctypes.c_void_p.in_dll(_libc, "environ")
    else:
        c_envp = (ctypes.c_char_p * (len(envp) + 1))(*envp, None)
    attr, actions = _Attr(), _Actions()
    allsigs, nosigs = _Sigset(), _Sigset()
    _check(_libc.posix_spawnattr_init(attr), "attr")
    try:
        _check(_libc.posix_spawn_file_actions_init(actions), "actions")
        try:
            _libc.sigemptyset(allsigs)
            _libc.sigemptyset(nosigs)
            # every signal 1..64 by its bit: sigfillset/sigaddset leave out
            # libc's internal ones (32, 33), which posix_spawn then sets to
            # SIG_IGN in the child; a child started by a shell has them at
            # their default, and so does ours
            ctypes.memset(allsigs, 0xFF, 8)
            _check(_libc.posix_spawnattr_setsigdefault(attr, allsigs), "sigdefault")
            _check(_libc.posix_spawnattr_setsigmask(attr, nosigs), "sigmask")
            if _libc.posix_spawnattr_setflags(attr, _SETSIGDEF | _SETSIGMASK | _SETSID):
                # glibc < 2.26 has no SETSID: a new process group instead
                _check(_libc.posix_spawnattr_setpgroup(attr, 0), "pgroup")
                _check(_libc.posix_spawnattr_setflags(
                    attr, _SETSIGDEF | _SETSIGMASK | _SETPGROUP), "flags")
            for target, fd in enumerate(stdio):
                _check(_libc.posix_spawn_file_actions_adddup2(actions, fd, target), "dup2")
            keep = 3
            if errpipe is not None:  # the helper's error pipe, at 3
                _check(_libc.posix_spawn_file_actions_adddup2(actions, errpipe, 3), "dup2")
                keep = 4
            if _addclosefrom is not None:
                _check(_addclosefrom(actions, keep), "closefrom")
            # else: every descriptor Python opens is close-on-exec already
            if cwd_b is not None:
                _check(_addchdir(actions, cwd_b), "chdir")
            pid = ctypes.c_int(0)
            rc = _posix_spawn(ctypes.byref(pid), path_b, actions, attr, c_argv, c_envp)
        finally:
            _libc.posix_spawn_file_actions_destroy(actions)
    finally:
        _libc.posix_spawnattr_destroy(attr)
    if rc != 0:
        # a chdir failure is reported the same way; name the likelier culprit
        culprit = cwd if cwd is not None and not os.path.isdir(cwd) else path
        raise OSError(rc, os.strerror(rc), culprit)
    return Child(pid.value)


def _decode_status(info) -> int:
    if info.si_code == os.CLD_EXITED:
        return info.si_status
    return -info.si_status


class Child:
    """A child started by ``spawn``: its exit status without reaping it
    (``status``), waits that a cancel event ends (``wait``), reaping
    (``reap``) and signalling its process group (``signal_group``), safely
    from any thread. ``returncode`` is set once reaped: the exit code, or
    ``-signal``; -1 when someone else reaped it (SIGCHLD ignored)."""

    _SLICE = 0.1   # longest sleep between checks of a cancel event

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self.group_alive = True
        self._status: int | None = None
        self._lock = threading.Lock()
        #: a confined spawn's deferred error pipe (spawn(defer_exec_errors=True))
        self._report_fd: int | None = None
        self._report_path = None
        try:
            self._pidfd: int | None = os.pidfd_open(pid) if _PIDFDS else None
        except (OSError, AttributeError):
            self._pidfd = None  # old kernel, or out of descriptors: waits poll

    # -- state -------------------------------------------------------------------
    def status(self) -> int | None:
        """The exit status once the child has exited, without reaping it (so
        its pid, group id and session id stay allocated to it)."""
        if self._status is not None:
            return self._status
        with self._lock:
            if self.returncode is not None:
                return self.returncode
            try:
                info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                self._status = -1
                return -1
            except InterruptedError:
                return None
            if info is None:
                return None
            self._status = _decode_status(info)
            return self._status

    def poll(self) -> int | None:
        return self.status()

    def wait(self, timeout: float | None = None, cancel: threading.Event | None = None) -> int:
        """Until the child exits (not reaped): its status. Raises
        TimeoutExpired after ``timeout`` s, Cancelled once ``cancel`` is set."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.0005
        while True:
            st = self.status()
            if st is not None:
                return st
            if cancel is not None and cancel.is_set():
                raise Cancelled
            left = self._SLICE if deadline is None else min(self._SLICE,
                                                            deadline - time.monotonic())
            if left <= 0:
                raise TimeoutExpired
            fd = self._pidfd
            if fd is not None:
                try:
                    poller = select.poll()
                    poller.register(fd, select.POLLIN)
                    if poller.poll(max(1, int(left * 1000))) and self.status() is None:
                        time.sleep(min(left, 0.005))  # fd closed by a reaper and reused
                except (OSError, ValueError):
                    time.sleep(min(left, 0.005))
            else:
                time.sleep(min(delay, left))
                delay = min(delay * 2, 0.05)

    def reap(self) -> int:
        """Reap an exited child (blocks until it exits: signal it first).
        Then probe whether members of its group are left (``group_alive``)."""
        with self._lock:
            if self.returncode is None:
                try:
                    while True:
                        try:
                            _pid, st = os.waitpid(self.pid, 0)
                            break
                        except InterruptedError:
                            continue
                    code = os.waitstatus_to_exitcode(st)
                except ChildProcessError:
                    code = self._status if self._status is not None else -1
                self.returncode = code
                self._probe_group()
                fd, self._pidfd = self._pidfd, None
                if fd is not None and not self.group_alive:
                    os.close(fd)
                elif fd is not None:
                    self._pidfd = fd  # kept: it names the group on Linux 6.9+
            return self.returncode

    def _probe_group(self) -> None:
        try:
            os.killpg(self.pid, 0)
        except ProcessLookupError:
            self.group_alive = False
        except OSError:
            pass

    def exec_error(self) -> OSError | None:
        """For a deferred confined spawn, once the child has exited: why its
        target never ran (the OSError a direct spawn raises), or None. Closes
        the error pipe; later calls return None."""
        with self._lock:
            fd, self._report_fd = self._report_fd, None
        if fd is None:
            return None
        try:
            report = _read_report(fd)  # the child is gone: EOF at once
        finally:
            os.close(fd)
        return _report_error(report, self._report_path) if report else None

    def release_exec_report(self) -> None:
        with self._lock:
            fd, self._report_fd = self._report_fd, None
        if fd is not None:
            os.close(fd)

    # -- signals -----------------------------------------------------------------
    def signal_group(self, sig: int) -> None:
        """Signal the child's process group: everything it started that
        stayed in it, whether or not the leader has exited or been reaped."""
        with self._lock:
            if self.returncode is None:
                # alive or a zombie: the group id cannot belong to anyone else
                try:
                    os.killpg(self.pid, sig)
                except ProcessLookupError:
                    pass
                except PermissionError:
                    try:
                        os.kill(self.pid, sig)
                    except OSError:
                        pass
                return
            if not self.group_alive:
                return
            if self._pidfd is not None and _group_pidfd_ok:
                try:
                    _signal.pidfd_send_signal(self._pidfd, sig, None,
                                              _PIDFD_SIGNAL_PROCESS_GROUP)
                    return
                except ProcessLookupError:
                    self._forget_group()
                    return
                except OSError:
                    pass  # before Linux 6.9: EINVAL; fall back to the number
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                self._forget_group()
            except OSError:
                pass

    def _forget_group(self) -> None:
        self.group_alive = False
        fd, self._pidfd = self._pidfd, None
        if fd is not None:
            os.close(fd)

    def group_gone(self) -> bool:
        """For a reaped child: True once no member of its group is left."""
        if self.returncode is None:
            return False
        self.signal_group(0)
        return not self.group_alive

    def drop_pidfd(self) -> None:
        """Close a reaped child's pidfd but keep signalling its group by
        number (bounds the descriptors held for lingering groups)."""
        with self._lock:
            if self.returncode is not None and self._pidfd is not None:
                fd, self._pidfd = self._pidfd, None
                os.close(fd)

    def release(self) -> None:
        """Forget the group (its pidfd) and a deferred error pipe: after its
        final SIGKILL."""
        self.release_exec_report()
        with self._lock:
            if self.returncode is not None:
                self._forget_group()


def kill_group_and_reap(child: Child, timeout: float = 5.0) -> bool:
    """The end of every child (``process.*`` and MCP servers alike): SIGKILL
    its whole group (leader exited or not), reap the leader, SIGKILL again
    (anything forked meanwhile) and forget the group. False when the leader
    was not reaped within ``timeout`` (stuck in the kernel): left to a later
    close or the interpreter's exit."""
    child.signal_group(_signal.SIGKILL)
    try:
        child.wait(timeout=timeout)
    except TimeoutExpired:
        return False
    child.reap()
    child.signal_group(_signal.SIGKILL)
    child.release()
    return True


# -- buffered output of a live child ---------------------------------------------
#
# What ``process.spawn`` keeps of a running child: its stdout and stderr as
# capped line queues (``OutputStream``) charged to the session's
# ``OutputBudget``, fed by one ``Pump`` thread per session (epoll over every
# live child's pipes, and the stdin payload written as the child reads it).

#: What one buffered line costs against those caps beyond its bytes: the
#: bytes object's header and allocator rounding and its deque slot (a line
#: of n bytes holds at most n + 73 bytes), and the deque slot of a marker
#: that may follow it (issue 22.8).
LINE_COST = 96
#: bytes read from (or written to) a child's pipe at a time
READ_CHUNK = 1 << 16


class Marker:
    """"Lines were dropped": one shared object per message and stream, so a
    marker in the queue costs a deque slot (covered by ``LINE_COST``: a
    marker never follows another, so there is at most one per line)."""
    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


class OutputBudget:
    """Unread output held for all of a session's children together, so 256
    handles nobody reads cannot hold 256 times the per-stream cap."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.used = 0
        self.lock = threading.Lock()

    def take(self, n: int) -> bool:
        with self.lock:
            if self.used + n > self.cap:
                return False
            self.used += n
            return True

    def give(self, n: int) -> None:
        with self.lock:
            self.used -= n


class OutputStream:
    """Lines of one output pipe, fed by the pump, taken by read_*_line.

    ``buffered`` is the memory this stream holds, as charged against its cap
    and the session's pool: every line's bytes plus ``LINE_COST``, and the
    bytes of the partial line being gathered. A run of losses leaves one
    marker."""

    def __init__(self, line_cap: int, buf_cap: int, pool: OutputBudget) -> None:
        self.pool = pool
        self.cond = threading.Condition(threading.Lock())
        self.items: collections.deque = collections.deque()
        self.buffered = 0
        self.partial = bytearray()
        self.skipping = False
        self.eof = False
        self.line_cap = line_cap
        self.buf_cap = buf_cap
        self.markers: dict = {}

    def _take(self, n: int) -> str | None:
        """Charge ``n`` bytes: None, or why not (the marker's message)."""
        if self.buffered + n > self.buf_cap:
            return f"more than {self.buf_cap} bytes of unread output; lines were dropped"
        if not self.pool.take(n):
            return (f"more than {self.pool.cap} bytes of unread output (all of the "
                    "session's children); lines were dropped")
        self.buffered += n
        return None

    def _give(self, n: int) -> None:
        self.buffered -= n
        self.pool.give(n)

    def _mark(self, message: str) -> None:
        if self.items and isinstance(self.items[-1], Marker):
            return  # one marker stands for the whole run of losses
        marker = self.markers.get(message)
        if marker is None:
            marker = self.markers[message] = Marker(message)
        self.items.append(marker)

    def _drop_partial(self) -> None:
        self._give(len(self.partial))
        self.partial.clear()

    def _push_line(self, line: bytes, charged: int) -> None:
        """Queue a complete line of which ``charged`` bytes (its gathered
        partial part) are already charged."""
        why = self._take(len(line) - charged + LINE_COST)
        if why is not None:
            self._give(charged)
            self._mark(why)
            return
        self.items.append(line)

    def feed(self, data: bytes) -> None:
        with self.cond:
            start, n = 0, len(data)
            while start < n:
                nl = data.find(b"\n", start)
                end = n if nl < 0 else nl
                complete = nl >= 0
                piece = data[start:end]
                start = end + 1 if complete else n
                if self.skipping:
                    self.skipping = not complete
                    continue
                if len(self.partial) + len(piece) > self.line_cap:
                    self._drop_partial()
                    self._mark(f"line longer than {self.line_cap} bytes")
                    self.skipping = not complete
                    continue
                if complete:
                    if self.partial:
                        charged = len(self.partial)
                        self.partial += piece
                        line = bytes(self.partial)
                        self.partial.clear()
                    else:
                        charged, line = 0, piece
                    self._push_line(line, charged)
                elif piece:
                    why = self._take(len(piece))
                    if why is not None:  # the partial line cannot be held: drop it whole
                        self._drop_partial()
                        self._mark(why)
                        self.skipping = True
                        continue
                    self.partial += piece
            self.cond.notify_all()

    def finish(self) -> None:
        with self.cond:
            if self.partial and not self.skipping:
                charged = len(self.partial)
                line = bytes(self.partial)
                self.partial.clear()
                self._push_line(line, charged)
            else:
                self._drop_partial()
            self.eof = True
            self.cond.notify_all()

    def read_line(self, cancel: threading.Event | None = None):
        """The next line (bytes, no newline), None at EOF, or a Marker.
        Raises EffectError once the session is closed."""
        with self.cond:
            while not self.items and not self.eof:
                if cancel is not None and cancel.is_set():
                    break
                self.cond.wait(0.1 if cancel is not None else 1.0)
            if not self.items:
                if cancel is not None and cancel.is_set():
                    raise EffectError("the handler is closed")
                return None
            item = self.items.popleft()
            if not isinstance(item, Marker):
                self._give(len(item) + LINE_COST)
            return item

    def drop(self) -> None:
        """Forget unread lines (the handle is gone) and give their memory back."""
        with self.cond:
            self.pool.give(self.buffered)
            self.buffered = 0
            self.items.clear()
            self.partial.clear()
            self.eof = True
            self.cond.notify_all()


class LiveChild:
    __slots__ = ("popen", "out", "err", "in_fd", "out_fd", "err_fd", "payload", "released",
                 "__weakref__")

    def __init__(self, popen, in_fd, out_fd, err_fd, payload, limits, pool) -> None:
        self.popen = popen
        self.in_fd = in_fd
        self.out_fd = out_fd
        self.err_fd = err_fd
        self.payload = memoryview(payload) if payload is not None else None
        self.out = OutputStream(limits.proc_line_bytes, limits.proc_output_bytes, pool)
        self.err = OutputStream(limits.proc_line_bytes, limits.proc_output_bytes, pool)
        self.released = threading.Event()

    def close_fds(self) -> None:
        for name in ("in_fd", "out_fd", "err_fd"):
            fd = getattr(self, name)
            if fd is not None:
                setattr(self, name, None)
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.out.drop()  # the handle is gone: its unread lines go too
        self.err.drop()
        self.released.set()


class Pump:
    """One thread per session: epoll over every live child's pipes. All of
    those descriptors are closed on this thread (commands come through an
    eventfd), so no descriptor is closed under a poll that watches it.
    Where there is no epoll or eventfd (or ``LEXFAST_FORCE_PORTABLE=1``): a
    ``selectors`` poller and a pipe (:mod:`.poller`)."""

    def __init__(self) -> None:
        self.waker = _poller.Waker()
        try:
            self.ep = _poller.new_poller(self.waker)
        except BaseException:
            self.waker.close()
            raise
        self.wake = self.waker.fd
        self.lock = threading.Lock()
        self.fds: dict = {}
        self.procs: set = set()
        self.cmds: collections.deque = collections.deque()
        self.quitting = False
        self.thread = threading.Thread(target=self._run, name="lexfast-process-pump",
                                       daemon=True)
        self.thread.start()

    # -- called from VM threads --------------------------------------------
    def add(self, proc: LiveChild) -> None:
        with self.lock:
            if self.quitting:
                raise EffectError("the handler is closed")
            self.procs.add(proc)
            for fd, which in ((proc.out_fd, "out"), (proc.err_fd, "err")):
                os.set_blocking(fd, False)
                self.fds[fd] = (proc, which)
                self.ep.register(fd, _poller.IN)
            if proc.payload is not None:
                os.set_blocking(proc.in_fd, False)
                self.fds[proc.in_fd] = (proc, "in")
                self.ep.register(proc.in_fd, _poller.OUT)

    def _command(self, proc, cmd, timeout: float = 5.0) -> None:
        done = threading.Event()
        with self.lock:
            if self.quitting:
                return  # the pump has released everything already
            self.cmds.append((proc, cmd, done))
            self.waker.wake()  # under the lock: the pump closes it under the lock
        if threading.current_thread() is not self.thread:
            done.wait(timeout)

    def close_stdin(self, proc: LiveChild) -> None:
        self._command(proc, "close_in")

    def release(self, proc: LiveChild) -> None:
        if not proc.released.is_set():
            self._command(proc, "release")

    def quit(self) -> None:
        self._command(None, "quit")
        self.thread.join(10.0)

    # -- the pump thread ------------------------------------------------------
    def _close(self, proc: LiveChild, which: str) -> None:
        name = {"in": "in_fd", "out": "out_fd", "err": "err_fd"}[which]
        fd = getattr(proc, name)
        if fd is None:
            return
        with self.lock:
            if self.fds.pop(fd, None) is not None:
                try:
                    self.ep.unregister(fd)
                except OSError:
                    pass
        setattr(proc, name, None)
        try:
            os.close(fd)
        except OSError:
            pass
        if which == "out":
            proc.out.finish()
        elif which == "err":
            proc.err.finish()

    def _release(self, proc: LiveChild) -> None:
        for which in ("in", "out", "err"):
            self._close(proc, which)
        with self.lock:
            self.procs.discard(proc)
        proc.close_fds()

    def _write_stdin(self, proc: LiveChild, events: int) -> None:
        if events & (_poller.ERR | _poller.HUP):
            self._close(proc, "in")  # the child closed its stdin
            return
        try:
            n = os.write(proc.in_fd, proc.payload[:READ_CHUNK])
        except BlockingIOError:
            return
        except OSError:
            n = len(proc.payload)
        proc.payload = proc.payload[n:]
        if not proc.payload:
            proc.payload = None
            self._close(proc, "in")  # EOF for the child

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            # Whatever ended the loop, no reader may wait for this pump again.
            with self.lock:
                self.quitting = True
                procs = list(self.procs)
                cmds = list(self.cmds)
                self.cmds.clear()
            for p in procs:
                try:
                    self._release(p)
                except Exception:
                    p.close_fds()
            with self.lock:
                try:
                    self.ep.close()
                    self.waker.close()
                except OSError:
                    pass
            for _p, _c, done in cmds:
                done.set()

    def _loop(self) -> None:
        while True:
            try:
                events = self.ep.poll()
            except InterruptedError:
                continue
            for fd, ev in events:
                if fd == self.wake:
                    self.waker.drain()
                    continue
                with self.lock:
                    entry = self.fds.get(fd)
                if entry is None:
                    continue
                proc, which = entry
                if which == "in":
                    self._write_stdin(proc, ev)
                    continue
                try:
                    data = os.read(fd, READ_CHUNK)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if data:
                    (proc.out if which == "out" else proc.err).feed(data)
                else:
                    self._close(proc, which)
            while True:
                with self.lock:
                    if not self.cmds:
                        break
                    proc, cmd, done = self.cmds.popleft()
                if cmd == "close_in":
                    if proc.payload is None:
                        self._close(proc, "in")
                    # else: the payload is still being written; its end closes stdin
                elif cmd == "release":
                    self._release(proc)
                elif cmd == "quit":
                    with self.lock:
                        self.cmds.appendleft((proc, cmd, done))  # set in _run's cleanup
                    return
                done.set()

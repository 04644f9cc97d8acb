#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Run a command as a child subreaper and fail when a process it started outlives it.

    tests/reaper.py [--record NAME] [--grace SECONDS] -- COMMAND [ARG...]

A process whose parent dies is reparented to its nearest ancestor that is a child subreaper
(prctl PR_SET_CHILD_SUBREAPER), else to init, where nobody notices it. Run as one, this script
collects everything COMMAND leaves behind: it reaps orphans while COMMAND runs (those that
ended are no leak), and once COMMAND has exited it gives the rest GRACE seconds (default 3)
to end. Any still there are printed (pid and command line, with their own children), killed
with SIGKILL and reaped, and the run fails.

Exit status: COMMAND's own when it failed, else 1 if processes were left behind, else 0.
With --record NAME the verdict is also written through tests/run-suite.sh --record NAME
pass|fail, so that `make check` counts it (its summary lists NAME when it failed).
"""
import ctypes
import os
import signal
import subprocess
import sys
import time

PR_SET_CHILD_SUBREAPER = 36
HERE = os.path.dirname(os.path.abspath(__file__))


def usage():
    sys.stderr.write("usage: tests/reaper.py [--record NAME] [--grace SECONDS] -- COMMAND "
                     "[ARG...]\n")
    sys.exit(2)


def children_of(pid):
    """The pids of pid's children (every thread's), or an empty set when pid is gone."""
    kids = set()
    task_dir = "/proc/%d/task" % pid
    try:
        tids = os.listdir(task_dir)
    except OSError:
        return kids
    for tid in tids:
        try:
            with open("%s/%s/children" % (task_dir, tid)) as f:
                kids.update(int(p) for p in f.read().split())
        except FileNotFoundError:
            # A kernel without CONFIG_PROC_CHILDREN: scan every process for its parent.
            return children_by_scan(pid)
        except OSError:
            pass
    return kids


def children_by_scan(pid):
    kids = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                stat = f.read()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            kids.add(int(entry))
    return kids


def describe(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            cmdline = f.read().rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        cmdline = ""
    if not cmdline:
        try:
            with open("/proc/%d/comm" % pid) as f:
                cmdline = "[%s]" % f.read().strip()
        except OSError:
            cmdline = "[gone]"
    return cmdline


def tree(pid, depth=0):
    """pid and its descendants as (depth, pid) pairs, parents first."""
    out = [(depth, pid)]
    for kid in sorted(children_of(pid)):
        out.extend(tree(kid, depth + 1))
    return out


def reap():
    """Reap every child that has exited; returns {pid: exit code} of those reaped."""
    reaped = {}
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return reaped
        if pid == 0:
            return reaped
        reaped[pid] = os.waitstatus_to_exitcode(status)


def record(name, passed):
    if name:
        subprocess.call([os.path.join(HERE, "run-suite.sh"), "--record", name,
                         "pass" if passed else "fail"])


def main(argv):
    name, grace = None, 3.0
    while argv and argv[0] != "--":
        if argv[0] == "--record" and len(argv) > 1:
            name, argv = argv[1], argv[2:]
        elif argv[0] == "--grace" and len(argv) > 1:
            grace, argv = float(argv[1]), argv[2:]
        else:
            usage()
    if len(argv) < 2:
        usage()
    command = argv[1:]
    shown = " ".join(command)

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        sys.stderr.write("reaper: prctl(PR_SET_CHILD_SUBREAPER): %s: cannot watch for "
                         "leftover processes\n" % os.strerror(err))
        record(name, False)
        return 1

    # Ctrl-C goes to the whole foreground process group: COMMAND decides what to do with it,
    # and this script still cleans up after it. A SIGTERM for this script is passed on.
    # (Handlers, unlike SIG_IGN, are reset in COMMAND when it execs.)
    child = None

    def pass_on(signo, frame):
        if child is not None and child.returncode is None:
            child.send_signal(signo)

    signal.signal(signal.SIGINT, lambda signo, frame: None)
    signal.signal(signal.SIGTERM, pass_on)

    # close_fds=False: make's jobserver descriptors must reach a sub-make.
    try:
        child = subprocess.Popen(command, close_fds=False)
    except OSError as e:
        sys.stderr.write("reaper: %s: %s\n" % (command[0], e.strerror))
        record(name, False)
        return 127
    status = None
    while status is None:
        # Any child: COMMAND, or an orphan that ended meanwhile (reaped, no leak).
        try:
            pid, wstatus = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        if pid == child.pid:
            status = os.waitstatus_to_exitcode(wstatus)
            child.returncode = status
    if status is None:
        status = 1
    elif status < 0:
        status = 128 - status  # killed by a signal: the shell's convention

    deadline = time.monotonic() + grace
    while True:
        reap()
        left = sorted(children_of(os.getpid()))
        if not left or time.monotonic() >= deadline:
            break
        time.sleep(0.05)

    if not left:
        print("== orphans: no process outlived `%s`" % shown)
        record(name, True)
        return status

    doomed = [pid for top in left for _, pid in tree(top)]
    sys.stderr.write("reaper: %d process%s outlived `%s` by %.0f s:\n"
                     % (len(doomed), "" if len(doomed) == 1 else "es", shown, grace))
    for top in left:
        for depth, pid in tree(top):
            sys.stderr.write("reaper:   %s%d %s\n" % ("  " * depth, pid, describe(pid)))
    # Kill them all, then reap: a killed parent's children come to us too.
    deadline = time.monotonic() + 10
    while left and time.monotonic() < deadline:
        for top in left:
            for _, pid in tree(top):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        time.sleep(0.05)
        reap()
        left = sorted(children_of(os.getpid()))
    if left:
        sys.stderr.write("reaper: could not kill %s\n" % " ".join(map(str, left)))
    sys.stderr.write("reaper: killed them; the run fails\n")
    record(name, False)
    return status if status else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Confine this process, then exec the kernel: ``python -m eda_gateway.isolation.launch SPEC -- ARGV...``.

SPEC is one JSON argument (never a shell string) built by ``eda_gateway.isolation.plan``:

    {"private_proc": true | false,
     "landlock": {"read": [...], "write": [...], "devices": [...],
                  "tcp": true (rule TCP ports) | false, "bind_ports": [...],
                  "connect_ports": [[lo, hi], ...] | "any"} | null,
     "uid": 300001 | null, "gid": 300001 | null, "cwd": "/path" | null}

Order matters: a private /proc is mounted while we are still root (``procfs``),
the Landlock ruleset is built while we may still open every path, the process
is restricted, the bounding set is emptied, the uid is dropped, every other
capability set is emptied and checked (``privileges``), then the kernel is
exec'd. Any failure exits non-zero before the kernel runs: a kernel never
starts less confined than asked.
"""

from __future__ import annotations

import json
import os
import sys

from . import landlock, privileges, procfs

EXIT_CONFINEMENT_FAILED = 97


def apply_landlock(spec: dict) -> None:
    ruleset = landlock.Ruleset(network=spec.get("tcp", True))
    for path in spec.get("read", []):
        ruleset.allow_path(path, landlock.READ)
    for path in spec.get("write", []):
        ruleset.allow_path(path, landlock.READ | landlock.WRITE)
    for path in spec.get("devices", []):
        ruleset.allow_path(path, landlock.READ_FILE | landlock.WRITE_FILE | landlock.IOCTL_DEV)
    ruleset.allow_ports(spec.get("bind_ports", []), landlock.BIND_TCP)
    connect = spec.get("connect_ports", [])
    if connect == "any":
        connect = [[1, 65535]]
    for low, high in connect:
        ruleset.allow_ports(range(low, high + 1), landlock.CONNECT_TCP)
    ruleset.restrict()


def drop_uid(uid: int, gid: int) -> None:
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if os.getuid() != uid or os.geteuid() != uid or os.getegid() != gid:
        raise PermissionError("uid drop did not stick")
    try:  # root must be gone for good
        os.setuid(0)
    except PermissionError:
        return
    raise PermissionError("could regain root after the uid drop")


def main(argv: list[str]) -> None:
    if len(argv) < 3 or argv[1] != "--":
        sys.exit("usage: python -m eda_gateway.isolation.launch SPEC_JSON -- ARGV...")
    spec, command = json.loads(argv[0]), argv[2:]
    try:
        if spec.get("private_proc"):
            procfs.make_private()
        if spec.get("landlock") is not None:
            apply_landlock(spec["landlock"])
        privileges.drop_bounding()
        if spec.get("uid") is not None:
            drop_uid(int(spec["uid"]), int(spec["gid"]))
        privileges.drop_all()
        privileges.verify()
        if spec.get("cwd"):  # after the drop: the folder belongs to the new uid
            os.chdir(spec["cwd"])
    except OSError as e:
        print(f"eda_gateway.isolation: confinement failed, kernel not started: {e}", file=sys.stderr)
        os._exit(EXIT_CONFINEMENT_FAILED)
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])

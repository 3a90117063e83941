"""CPU seconds of the parts of a benchmark run, read from /proc (Linux).

A worker's children are recycled and database backends come and go with their connections;
both are counted through their parent's cutime/cstime once reaped, so a difference between
two readings holds all the work done in between.
"""

from __future__ import annotations

import contextlib
import os

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as stream:
        return stream.read().rpartition(")")[2].split()


def _cpu(fields: list[str], *, reaped: bool = False) -> float:
    """utime + stime (fields 14, 15), plus cutime + cstime of reaped children if asked."""
    ticks = int(fields[11]) + int(fields[12])
    if reaped:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / CLOCK_TICKS


def _names(pid: int) -> tuple[str, str]:
    with open(f"/proc/{pid}/cmdline", "rb") as stream:
        command = stream.read().replace(b"\0", b" ").decode(errors="replace")
    with open(f"/proc/{pid}/comm") as stream:
        return stream.read().strip(), command


def _processes() -> dict[int, tuple[list[str], str, str]]:
    """{pid: (stat fields, name, command line)} of every process that can be read now."""
    processes = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):  # it ended while being read
                processes[int(entry)] = (_stat(int(entry)), *_names(int(entry)))
    return processes


def cpu_seconds(
    worker_pid: int,
    *,
    database: str = "",
    redis_port: int | None = None,
    exclude: tuple[int, ...] = (),
) -> dict[str, float]:
    """CPU seconds used so far by the worker, PostgreSQL and Redis.

    Processes that ended (recycled worker children, backends of closed connections) count
    through their parent's cutime/cstime, so nothing drops out between samples. `database`:
    live backends of other databases are left out (their reaped ones cannot be told apart:
    run benchmarks on a quiet machine). `redis_port`: only that Redis server. `exclude`:
    processes not to count, such as the benchmark's own sampling connection.
    """
    processes = _processes()
    postgres = {pid for pid, (_, name, _) in processes.items() if name == "postgres"}
    totals = {"worker": 0.0, "postgres": 0.0, "redis": 0.0}
    for pid, (fields, name, command) in processes.items():
        if pid in exclude:
            continue
        parent = int(fields[1])
        if pid == worker_pid:
            totals["worker"] += _cpu(fields, reaped=True)
        elif parent == worker_pid:
            totals["worker"] += _cpu(fields)
        elif pid in postgres:
            if parent not in postgres:  # the postmaster: it carries its reaped backends
                totals["postgres"] += _cpu(fields, reaped=True)
            elif not _other_database(command, database):
                totals["postgres"] += _cpu(fields)
        elif name == "redis-server" and (redis_port is None or f":{redis_port}" in command):
            totals["redis"] += _cpu(fields, reaped=True)  # with its background saves
    return totals


def postgres_cpu_parts(*, database: str = "", exclude: tuple[int, ...] = ()) -> dict[str, float]:
    """PostgreSQL's CPU seconds so far, taken apart: which processes, and how much in the kernel.

    `backends`: live backends of `database`; `reaped`: backends (and other children) that
    ended, carried by the postmaster; one entry per server process by its title
    (checkpointer, walwriter, …); `kernel`: the system time of all of those. A step in the
    database's cost per document then says whether it is in the statements' backends, in a
    server process, or in the kernel (WAL flushes, page cache).
    """
    parts: dict[str, float] = {"backends": 0.0, "reaped": 0.0, "postmaster": 0.0, "kernel": 0.0}
    processes = {
        pid: (fields, command)
        for pid, (fields, name, command) in _processes().items()
        if name == "postgres"
    }
    for pid, (fields, command) in processes.items():
        if pid in exclude:
            continue
        if int(fields[1]) not in processes:  # the postmaster
            parts["postmaster"] += _cpu(fields)
            parts["reaped"] += (int(fields[13]) + int(fields[14])) / CLOCK_TICKS
            parts["kernel"] += (int(fields[12]) + int(fields[14])) / CLOCK_TICKS
            continue
        title = command.split(": ", 2)[-1].strip()
        if _is_backend(command):
            if _other_database(command, database):
                continue
            part = "backends"
        else:
            part = title.split(" ")[0] if title.startswith("autovacuum") else title
        parts[part] = parts.get(part, 0.0) + _cpu(fields)
        parts["kernel"] += int(fields[12]) / CLOCK_TICKS
    return parts


def process_cpu_seconds(pids: list[int]) -> float:
    """CPU seconds used so far by these (live) processes."""
    return sum(_cpu(_stat(pid)) for pid in pids)


def _is_backend(command: str) -> bool:
    """A backend's title is "postgres: <cluster>: <user> <database> <client> <state>"."""
    words = command.split()
    return len(words) >= 5 and ("(" in words[4] or words[4] == "[local]")


def _other_database(command: str, database: str) -> bool:
    return bool(database) and _is_backend(command) and command.split()[3] != database


def service_pids(redis_port: int | None = None) -> list[int]:
    """PostgreSQL's processes (postmaster, its helpers and backends) and the Redis server."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            name, command = _names(int(entry))
        except OSError:
            continue
        if name == "postgres" or (
            name == "redis-server" and (redis_port is None or f":{redis_port}" in command)
        ):
            pids.append(int(entry))
    return pids


def process_name(pid: int) -> str:
    return _names(pid)[0]


def release_services(redis_port: int | None, cores: set[int]) -> None:
    """PostgreSQL's and Redis' processes back on `cores` after pipeline.py pinned them (run_all
    also does it after each benchmark, in case one was killed meanwhile)."""
    for pid in service_pids(redis_port):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(pid, cores)

"""One live dispatcher per worker id.

A worker id names a dispatcher in the store, and a dispatcher started with the id of one that died
settles that one's interrupted sends at once (``engine.sending.reconcile``). A name is not a live
process, though: two processes given the same id (a copied service unit, two pods of one name, a
second one started by hand) each took the other's claims in flight for its own dead predecessor's,
and a touch could go out twice. So an id is held by one live instance at a time:

- taking it (``WorkerLease.take``): a row of ``worker_lease`` (id -> instance, host, pid, last seen),
  inserted, or taken over only when its holder is gone: its heartbeat is older than the lease, or it
  ran on this machine (same boot, same pid namespace) and its process is no longer there. Otherwise
  the taker is refused (``WorkerIdHeld``), told when the holder was last seen;
- holding it: a thread renews the heartbeat every ``BEAT_EVERY`` (one UPDATE a minute, whatever the
  batches do, so a batch slower than the lease keeps it); a renewal that finds the row another
  instance's marks the lease lost, and the dispatcher claims and sends nothing more;
- letting go: the row is deleted on a clean exit, so the next process with the id takes it at once.

Each instance's claims carry ``<worker id>#<instance>`` (``claim_id``): renewing a claim, recording a
result and settling its own unanswered sends match that exactly, so a process that lost its id (stopped
past the lease, then woken) touches none of its successor's claims, though both have the same name.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.engine import Engine
from sqlmodel.sql.sqltypes import UTCDateTime

from engine.sending.claiming import begin_write
from engine.sending.reconcile import DEFAULT_LEASE

log = logging.getLogger(__name__)

WORKER_LEASE = DEFAULT_LEASE
BEAT_EVERY = WORKER_LEASE / 5
SEPARATOR = "#"  # between the worker id and its instance on a claim
_INSTANCE_BYTES = 4  # eight hex characters: new per process, only told apart from the id's earlier holders
CLAIM_COLUMN = 64  # touch.claimed_by
MAX_WORKER_ID = CLAIM_COLUMN - len(SEPARATOR) - 2 * _INSTANCE_BYTES

_NOW = bindparam("now", type_=UTCDateTime())
_INSERT = text(
    "INSERT INTO worker_lease (worker_id, instance, host, pid, process, taken_at, seen_at) "
    "VALUES (:w, :i, :host, :pid, :process, :now, :now) ON CONFLICT (worker_id) DO NOTHING"
).bindparams(_NOW)
_HOLDER = text(
    "SELECT instance, host, pid, process, seen_at FROM worker_lease WHERE worker_id = :w"
).columns(seen_at=UTCDateTime())
_TAKE_OVER = ("UPDATE worker_lease SET instance = :i, host = :host, pid = :pid, process = :process, "
              "taken_at = :now, seen_at = :now WHERE worker_id = :w AND instance = :was")
_BEAT = text("UPDATE worker_lease SET seen_at = :now WHERE worker_id = :w AND instance = :i").bindparams(_NOW)
_LET_GO = text("DELETE FROM worker_lease WHERE worker_id = :w AND instance = :i")


def worker_id_fault(worker_id: str) -> str | None:
    """What makes ``worker_id`` unusable as one (the rest of a sentence that names it), or None."""
    if not worker_id.strip():
        return "is empty"
    if SEPARATOR in worker_id:
        return f"contains {SEPARATOR!r}, which separates the id from its process's instance on claims"
    if not worker_id.isprintable():
        return "contains a character that cannot be printed"
    if len(worker_id) > MAX_WORKER_ID:
        return f"is {len(worker_id)} characters long, {MAX_WORKER_ID} at most"
    return None


def default_worker_id() -> str:
    """``host:pid``, the host cut short if need be to leave room for the instance on claims."""
    pid = f":{os.getpid()}"
    return socket.gethostname()[: MAX_WORKER_ID - len(pid)] + pid


@dataclass(frozen=True)
class Holder:
    """The instance holding a worker id, as its row says."""

    worker_id: str
    instance: str
    host: str
    pid: int
    process: str | None
    seen_at: datetime


class WorkerIdHeld(Exception):
    """The id is held by an instance that is seen: this process must not dispatch under it."""

    def __init__(self, holder: Holder, now: datetime, lease: timedelta) -> None:
        self.holder, self.now, self.lease = holder, now, lease
        super().__init__(self.line(f"worker id {holder.worker_id!r}"))

    def line(self, named: str) -> str:
        """One line saying so, starting with ``named`` (how the id was given)."""
        h = self.holder
        ago = max(0, int((self.now - h.seen_at).total_seconds()))
        minutes = int(self.lease.total_seconds() // 60)
        return (f"{named} is held by a live dispatcher (pid {h.pid} on {h.host}), last seen "
                f"{h.seen_at:%Y-%m-%d %H:%M:%S} UTC ({ago} s ago): give this one another --worker, or stop that "
                f"one (the id of one that died is free {minutes} minutes after it was last seen)")


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as f:
            return f.read().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _machine() -> str | None:
    """This boot of this machine and this pid namespace: where a pid names the same process for everyone."""
    boot = _read("/proc/sys/kernel/random/boot_id")
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return None
    return f"{boot}/{namespace}" if boot and "/" not in boot + namespace else None


def process_key(pid: int) -> str | None:
    """The process ``pid`` is now (machine, pid, start time: a pid used again starts later), or None."""
    machine, stat = _machine(), _read(f"/proc/{pid}/stat")
    if machine is None or stat is None:
        return None
    after_name = stat.rsplit(")", 1)[-1].split()  # the name may hold spaces and brackets
    # starttime is the stat's 22nd field; after the name the 3rd comes first.
    return f"{machine}/{pid}/{after_name[19]}" if len(after_name) > 19 else None


def _gone(process: str | None) -> bool:
    """Whether the holder ran in this machine's pid namespace, this boot, and its process is not there any more.
    From elsewhere nothing can be told: only its heartbeat's age says it died."""
    if not process:
        return False
    parts = process.split("/")
    if len(parts) != 4 or not parts[2].isdigit() or _machine() != f"{parts[0]}/{parts[1]}":
        return False
    return process_key(int(parts[2])) != process


class WorkerLease:
    """A worker id held by this process (see the module doc); ``claim_id`` is what its claims carry."""

    def __init__(self, engine: Engine, worker_id: str, clock: Callable[[], datetime], *,
                 lease: timedelta = WORKER_LEASE, beat_every: timedelta = BEAT_EVERY) -> None:
        self.engine, self.worker_id, self.clock = engine, worker_id, clock
        self.lease, self.beat_every = lease, beat_every
        self.instance = secrets.token_hex(_INSTANCE_BYTES)
        self.claim_id = f"{worker_id}{SEPARATOR}{self.instance}"
        self.held = False
        self.previous: Holder | None = None  # the holder taken over, if there was one
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _row(self, now: datetime) -> dict[str, object]:
        pid = os.getpid()
        return {"w": self.worker_id, "i": self.instance, "host": socket.gethostname()[:255], "pid": pid,
                "process": process_key(pid), "now": now}

    def take(self) -> None:
        """Hold the id, or raise ``WorkerIdHeld``; then keep it renewed until ``release``."""
        while not self._took():
            pass  # the row changed between reading it and taking it over: read it again
        if self.previous is not None:
            log.warning("worker id %r taken over from pid %d on %s, not seen since %s: what it left in flight is "
                        "settled now", self.worker_id, self.previous.pid, self.previous.host,
                        f"{self.previous.seen_at:%Y-%m-%d %H:%M:%S} UTC")
        self.held = True
        self.lost.clear()
        self._stop.clear()
        # The thread holds the lease weakly: a dispatcher dropped without aclose stops renewing its id.
        self._thread = threading.Thread(target=_keep, args=(weakref.ref(self), self._stop), daemon=True,
                                        name=f"worker-lease {self.worker_id}")
        self._thread.start()

    def _took(self) -> bool:
        now = self.clock()
        row = self._row(now)
        with self.engine.connect() as conn:  # closed uncommitted: rolled back
            begin_write(conn)  # SQLite: the write lock first, so that reading the holder and taking over are one step
            if conn.execute(_INSERT, row).rowcount == 1:
                conn.commit()
                self.previous = None
                return True
            found = conn.execute(_HOLDER, {"w": self.worker_id}).one_or_none()
            if found is None:  # let go of between the two statements (PostgreSQL)
                return False
            holder = _holder(self.worker_id, found)
            stale = holder.seen_at < now - self.lease
            if holder.instance != self.instance and _live(holder, now, self.lease):
                raise WorkerIdHeld(holder, now, self.lease)
            # Only the holder that was read, and (unless its process is known gone) only while it is still
            # unseen: a holder that renewed meanwhile is alive.
            take_over = text(_TAKE_OVER).bindparams(_NOW)
            if stale:
                take_over = text(_TAKE_OVER + " AND seen_at < :stale").bindparams(
                    _NOW, bindparam("stale", type_=UTCDateTime()))
            taken = conn.execute(take_over, {**row, "was": holder.instance, "stale": now - self.lease})
            if taken.rowcount != 1:
                return False
            conn.commit()
        self.previous = holder if holder.instance != self.instance else None
        return True

    def beat(self) -> bool:
        """Renew the heartbeat; False if the id is no longer this instance's (taken over: it was unseen too long)."""
        with self.engine.begin() as conn:
            mine = conn.execute(_BEAT, {"w": self.worker_id, "i": self.instance, "now": self.clock()}).rowcount == 1
        if not mine:
            self.lost.set()
            log.error("worker id %r was taken over by another process (this one was not seen for %s): this "
                      "dispatcher claims and sends nothing more", self.worker_id, self.lease)
        return mine

    def stop(self) -> None:
        """Stop renewing (the id stays held until the lease runs out, as if the process had died)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def release(self) -> None:
        """Let go of the id at once (a clean exit), if this instance still holds it."""
        self.stop()
        if not self.held:
            return
        self.held = False
        with self.engine.begin() as conn:
            conn.execute(_LET_GO, {"w": self.worker_id, "i": self.instance})


def _holder(worker_id: str, found: Any) -> Holder:
    return Holder(worker_id, found.instance, found.host, int(found.pid), found.process, found.seen_at)


def _live(holder: Holder, now: datetime, lease: timedelta) -> bool:
    """Whether ``holder`` may still be dispatching: seen within the lease, its process not known gone."""
    return holder.seen_at >= now - lease and not _gone(holder.process)


def held_elsewhere(engine: Engine, worker_id: str, now: datetime,
                   lease: timedelta = WORKER_LEASE) -> WorkerIdHeld | None:
    """The refusal a dispatcher given ``worker_id`` would meet at ``now``, read without taking the id (taking
    it would take over a dead holder's row): for an entry point that says so before it starts anything."""
    with engine.connect() as conn:
        found = conn.execute(_HOLDER, {"w": worker_id}).one_or_none()
    if found is None:
        return None
    holder = _holder(worker_id, found)
    return WorkerIdHeld(holder, now, lease) if _live(holder, now, lease) else None


def _keep(held: weakref.ref[WorkerLease], stop: threading.Event) -> None:
    """Renew the lease every ``beat_every`` until stopped, lost, or dropped."""
    while True:
        lease = held()
        if lease is None:
            return
        every = lease.beat_every.total_seconds()
        del lease  # not kept alive by the wait
        if stop.wait(every):
            return
        lease = held()
        if lease is None:
            return
        try:
            if not lease.beat():
                return
        except Exception:  # a database that does not answer now may answer at the next beat
            log.warning("renewing worker id %r failed; trying again in %s", lease.worker_id, lease.beat_every,
                        exc_info=True)
        del lease

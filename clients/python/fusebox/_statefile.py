"""The fast path's reader: the sidecar's state file (``<socket>.state``),
mapped read-only. Layout version 1 is described in docs/protocol.md ("The
fast path"); anything unexpected (no file, not a regular file, not owned by
the socket's owner, another version, a heartbeat older than the sidecar's
stale-after or in the future, a boot id or pid other than the sidecar's
``hello`` named, a slot being rewritten too often) answers None, and the
caller asks the socket as it would without a fast path."""
from __future__ import annotations

import mmap
import os
import stat
import struct
import time
from typing import Dict, Optional, Tuple

MAGIC = b"FBXSTATE"
VERSION = 1
_HEADER = struct.Struct("<8sIIIIQQII")  # magic, version, header, slot size, slots, boot, heartbeat, pid, stale-after
_SEQUENCE = struct.Struct("<I")
_FIELDS = struct.Struct("<BBBxQ")  # after the sequence: state, flags, name length, generation
_HEARTBEAT = struct.Struct("<Q")
_HEARTBEAT_AT = 32
_NAME_AT = 64
_ADMITS_LOCALLY = 1
#: After this many rewrites seen during one read, give up and ask the socket.
_RETRIES = 16
#: A missing or stale file is looked for again at most this often.
_REOPEN_INTERVAL = 0.5
#: A file that says its sidecar may be silent longer than this is not believed (the sidecar says 1 s).
MAX_STALE_AFTER_MS = 10_000
#: A heartbeat later than now by more than this is not believed (one host, one clock).
_FUTURE_SLACK_MS = 100

STATES = {1: "closed", 2: "open", 3: "half_open", 4: "forced_open", 5: "disabled", 6: "metrics_only"}


def read_slot(mapped: mmap.mmap, offset: int) -> Optional[Tuple[int, int, int, bytes]]:
    """One slot's ``(state, flags, generation, name)`` if it was not being rewritten meanwhile, else None.
    The seqlock's read side: the sequence, the fields, the sequence again; equal and even means whole."""
    before = _SEQUENCE.unpack_from(mapped, offset)[0]
    state, flags, length, generation = _FIELDS.unpack_from(mapped, offset + 4)
    name = mapped[offset + _NAME_AT: offset + _NAME_AT + min(length, 64)]
    if before & 1 or _SEQUENCE.unpack_from(mapped, offset)[0] != before:
        return None
    return state, flags, generation, name


class StateBoard:
    """Breaker states as the sidecar posted them; one per client, shared by its threads.

    A file is believed only once the sidecar has said, in ``hello``, which
    file it made (``trust``): its boot id and pid. Until then, or when the
    file says otherwise, ``read`` answers None and ``unconfirmed`` holds what
    the file claims, so the client can ask ``hello`` again."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self.path = socket_path + ".state"
        self._map: Optional[mmap.mmap] = None
        self._header: Tuple[int, int, int, int] = (0, 0, 0, 0)  # header size, slot size, slots, stale-after ms
        self.boot_id = 0
        self._slots: Dict[str, int] = {}
        self._next_open = 0.0
        #: Times a new sidecar (another boot id) was found behind the path.
        self.restarts = 0
        #: ``(boot id, pid)`` of the file the sidecar's last hello named; None: no file is trusted.
        self._trusted: Optional[Tuple[int, int]] = None
        #: ``(boot id, pid)`` of a well-formed, fresh file that hello has not named (yet).
        self.unconfirmed: Optional[Tuple[int, int]] = None

    def trust(self, named: object) -> None:
        """What a ``hello`` answer's ``state_file`` says: the file to believe, or (absent) none."""
        identity: Optional[Tuple[int, int]] = None
        if isinstance(named, dict):
            boot, pid = named.get("boot_id"), named.get("pid")
            if isinstance(boot, str) and isinstance(pid, int):
                try:
                    identity = (int(boot, 16), pid)
                except ValueError:
                    identity = None
        if identity != self._trusted:
            self._trusted = identity
            self._map = None
            self._next_open = 0.0  # look at once: the file may be the one just named
        self.unconfirmed = None

    def read(self, breaker: str) -> Optional[Tuple[str, int, bool]]:
        """``(state, generation, admits_locally)`` for ``breaker``, or None
        when the file cannot be trusted now (the caller asks the socket)."""
        mapped = self._map
        if mapped is None or not self._fresh(mapped):
            mapped = self._reopen()
            if mapped is None:
                return None
        slot = self._slots.get(breaker)
        if slot is None:
            return None
        header, size = self._header[0], self._header[1]
        offset = header + slot * size
        encoded = breaker.encode()
        for _ in range(_RETRIES):
            whole = read_slot(mapped, offset)
            if whole is None:
                continue  # being rewritten: read again
            state, flags, generation, name = whole
            if name != encoded:
                self._index(mapped)  # a reload moved the breakers
                slot = self._slots.get(breaker)
                if slot is None:
                    return None
                offset = header + slot * size
                continue
            label = STATES.get(state)
            return None if label is None else (label, generation, bool(flags & _ADMITS_LOCALLY))
        return None

    def _fresh(self, mapped: mmap.mmap) -> bool:
        heartbeat = _HEARTBEAT.unpack_from(mapped, _HEARTBEAT_AT)[0]
        age = time.time() * 1000 - heartbeat
        return bool(-_FUTURE_SLACK_MS <= age <= self._header[3])

    def _reopen(self) -> Optional[mmap.mmap]:
        now = time.monotonic()
        if now < self._next_open:
            return None
        self._next_open = now + _REOPEN_INTERVAL
        self._map = None
        try:
            # Without blocking: a FIFO at the path would hang an ordinary open.
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError:
            return None
        try:
            info = os.fstat(fd)
            # A regular file of the socket's owner: anyone else's file at the path proves nothing.
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.stat(self.socket_path).st_uid:
                return None
            size = info.st_size
            if size < _HEADER.size:
                return None
            mapped = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ)
        except (OSError, ValueError):
            return None
        finally:
            os.close(fd)
        magic, version, header, slot_size, slots, boot, _, pid, stale_after = _HEADER.unpack_from(mapped, 0)
        if (magic != MAGIC or version != VERSION or header < _HEADER.size or slot_size < _NAME_AT + 64
                or header + slots * slot_size > size or not 0 < stale_after <= MAX_STALE_AFTER_MS):
            mapped.close()
            return None
        self._header = (header, slot_size, slots, stale_after)
        if not self._fresh(mapped):
            mapped.close()
            return None
        if (boot, pid) != self._trusted:
            self.unconfirmed = (boot, pid)  # perhaps a restarted sidecar: its hello will say
            mapped.close()
            return None
        if self.boot_id and boot != self.boot_id:
            self.restarts += 1
        self.boot_id = boot
        # The old map is not closed: another thread may be reading it; it goes with its last reference.
        self._index(mapped)
        self._map = mapped
        return mapped

    def _index(self, mapped: mmap.mmap) -> None:
        header, size, slots, _ = self._header
        found: Dict[str, int] = {}
        for slot in range(slots):
            offset = header + slot * size
            length = mapped[offset + 6]
            if mapped[offset + 4] == 0 or length == 0:
                continue
            name = mapped[offset + _NAME_AT: offset + _NAME_AT + length]
            found[name.decode("utf-8", "replace")] = slot
        self._slots = found

// The fast path's reader: the sidecar's state file (`<socket>.state`), read with
// positioned reads (Node cannot map a file). Layout version 1 is described in
// docs/protocol.md ("The fast path"). Anything unexpected (no file, not a
// regular file, not owned by the socket's owner, another version, a heartbeat
// older than the sidecar's stale-after or in the future, a boot id or pid other
// than the sidecar's `hello` named, a slot rewritten during every try) answers
// null, and the caller asks the socket.
import fs from 'node:fs';

const MAGIC = 'FBXSTATE';
const VERSION = 1;
const NAME_AT = 64;
const ADMITS_LOCALLY = 1;
const RETRIES = 16;
const REOPEN_INTERVAL_MS = 500;
// A file that says its sidecar may be silent longer than this is not believed (the sidecar says 1 s).
export const MAX_STALE_AFTER_MS = 10_000;
// A heartbeat later than now by more than this is not believed (one host, one clock).
const FUTURE_SLACK_MS = 100;
export const STATES = { 1: 'closed', 2: 'open', 3: 'half_open', 4: 'forced_open', 5: 'disabled', 6: 'metrics_only' };

export class StateBoard {
  constructor(socketPath) {
    this.socketPath = socketPath;
    this.path = `${socketPath}.state`;
    /** `{ bootId, pid }` of the file the sidecar's last hello named; null: no file is trusted. */
    this.trusted = null;
    /** `{ bootId, pid }` of a well-formed, fresh file that hello has not named (yet). */
    this.unconfirmed = null;
    this.fd = null;
    this.header = { size: 0, slotSize: 0, slots: 0, staleAfterMs: 0 };
    this.bootId = 0n;
    /** Times a new sidecar (another boot id) was found behind the path. */
    this.restarts = 0;
    this.slots = new Map();
    this.nextOpen = 0;
    this.word = Buffer.alloc(8);
    this.slot = Buffer.alloc(128);
  }

  /** What a hello answer's `state_file` says: the file to believe, or (absent) none. */
  trust(named) {
    let identity = null;
    if (named && typeof named.boot_id === 'string' && /^[0-9a-f]{1,16}$/.test(named.boot_id) && Number.isInteger(named.pid)) {
      identity = { bootId: BigInt(`0x${named.boot_id}`), pid: named.pid };
    }
    if (identity?.bootId !== this.trusted?.bootId || identity?.pid !== this.trusted?.pid) {
      this.trusted = identity;
      this.close();
      this.nextOpen = 0;  // look at once: the file may be the one just named
    }
    this.unconfirmed = null;
  }

  /** `{ state, generation, admitsLocally }` for `breaker`, or null: ask the socket. */
  read(breaker) {
    if (this.fd === null || !this.#fresh()) {
      if (!this.#reopen()) return null;
    }
    let index = this.slots.get(breaker);
    if (index === undefined) return null;
    for (let attempt = 0; attempt < RETRIES; attempt += 1) {
      const offset = this.header.size + index * this.header.slotSize;
      // The seqlock's read side: the sequence, the fields, the sequence again; equal and even means whole.
      const before = this.#u32(offset);
      fs.readSync(this.fd, this.slot, 0, 128, offset);
      if (before & 1 || this.#u32(offset) !== before) continue;
      const length = this.slot[6];
      if (this.slot.toString('utf8', NAME_AT, NAME_AT + length) !== breaker) {
        this.#index();  // a reload moved the breakers
        index = this.slots.get(breaker);
        if (index === undefined) return null;
        continue;
      }
      const state = STATES[this.slot[4]];
      if (state === undefined) return null;
      return { state, generation: Number(this.slot.readBigUInt64LE(8)), admitsLocally: (this.slot[5] & ADMITS_LOCALLY) !== 0 };
    }
    return null;
  }

  close() {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }

  #u32(position) {
    fs.readSync(this.fd, this.word, 0, 4, position);
    return this.word.readUInt32LE(0);
  }

  #fresh() {
    fs.readSync(this.fd, this.word, 0, 8, 32);
    const age = Date.now() - Number(this.word.readBigUInt64LE(0));
    return age >= -FUTURE_SLACK_MS && age <= this.header.staleAfterMs;
  }

  #reopen() {
    const now = Date.now();
    if (now < this.nextOpen) return false;
    this.nextOpen = now + REOPEN_INTERVAL_MS;
    this.close();
    let fd;
    // Without blocking: a FIFO at the path would hang an ordinary open.
    try { fd = fs.openSync(this.path, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK); } catch { return false; }
    const head = Buffer.alloc(48);
    let header;
    try {
      // A regular file of the socket's owner: anyone else's file at the path proves nothing.
      const info = fs.fstatSync(fd);
      if (!info.isFile() || info.uid !== fs.statSync(this.socketPath).uid) throw new Error('not the sidecar\'s file');
      if (fs.readSync(fd, head, 0, 48, 0) < 48 || head.toString('latin1', 0, 8) !== MAGIC || head.readUInt32LE(8) !== VERSION) {
        throw new Error('not a state file');
      }
      header = { size: head.readUInt32LE(12), slotSize: head.readUInt32LE(16), slots: head.readUInt32LE(20), staleAfterMs: head.readUInt32LE(44) };
      if (header.size < 48 || header.slotSize < 128 || header.size + header.slots * header.slotSize > info.size
          || header.staleAfterMs === 0 || header.staleAfterMs > MAX_STALE_AFTER_MS) {
        throw new Error('sizes out of bounds');
      }
    } catch {
      fs.closeSync(fd);
      return false;
    }
    this.fd = fd;
    this.header = header;
    if (!this.#fresh()) { this.close(); return false; }
    const boot = head.readBigUInt64LE(24);
    const pid = head.readUInt32LE(40);
    if (boot !== this.trusted?.bootId || pid !== this.trusted?.pid) {
      this.unconfirmed = { bootId: boot, pid };  // perhaps a restarted sidecar: its hello will say
      this.close();
      return false;
    }
    if (this.bootId !== 0n && boot !== this.bootId) this.restarts += 1;
    this.bootId = boot;
    this.#index();
    return true;
  }

  #index() {
    const { size, slotSize, slots } = this.header;
    const all = Buffer.alloc(slots * slotSize);
    fs.readSync(this.fd, all, 0, all.length, size);
    this.slots = new Map();
    for (let index = 0; index < slots; index += 1) {
      const at = index * slotSize;
      const length = all[at + 6];
      if (all[at + 4] === 0 || length === 0) continue;
      this.slots.set(all.toString('utf8', at + NAME_AT, at + NAME_AT + length), index);
    }
  }
}

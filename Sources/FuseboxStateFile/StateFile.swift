#if canImport(Glibc)
import Glibc
#endif

import CFuseboxStatfs
import FuseboxCore
import Synchronization

/// The fast path's state file (layout: `StateFileLayout`), mapped shared into
/// this process. The engine posts to it under its lock, so posting is a few
/// stores into memory: the mapped file always lives on a memory filesystem,
/// beside the socket when its directory is one, otherwise in `/dev/shm`
/// behind a symbolic link beside the socket. A disk never sits under it, so a
/// slow disk cannot slow a decision.
///
/// Each slot is a seqlock: the sequence goes odd, the fields change, the
/// sequence goes even again. Posts come only from under the engine's lock,
/// so there is one writer at a time.
public final class StateFile: @unchecked Sendable {
    public struct Problem: Error, CustomStringConvertible {
        public var description: String
    }

    /// Where clients look: `<socket>.state`.
    public let path: String
    /// The mapped file: `path` itself, or the `/dev/shm` file it links to.
    public let dataPath: String
    public let bootID: UInt64
    public let slots: Int
    private let base: UnsafeMutableRawPointer
    private let size: Int
    private let linked: Bool
    /// The mapped file's device and inode, so `remove` unlinks only this file.
    private let identity: [UInt64]
    private let removed = Atomic<Bool>(false)
    /// The name the file was written under before it was put in place.
    private let staged: String

    /// Creates the file and puts it in place of any older one (a new boot id
    /// tells clients the sidecar restarted). Capacity: `slots` breakers;
    /// breakers past it are not posted and their clients ask the socket.
    /// `bootID` 0 draws a new one; a file that replaces this sidecar's own
    /// (grown for more breakers) keeps its boot id, since the sidecar did not restart.
    public static func create(
        beside socket: String, slots: Int, socketMode: UInt32, staleAfter: Duration, bootID: UInt64 = 0
    ) throws(Problem) -> StateFile {
        let path = socket + ".state"
        var boot = bootID
        while boot == 0 { boot = UInt64.random(in: .min ... .max) }
        let directory = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
        let linked = !isMemoryFilesystem(directory.isEmpty ? "/" : directory)
        if linked, !isMemoryFilesystem("/dev/shm") {
            throw Problem(description: "\(directory) is not a memory filesystem and /dev/shm is missing; put the socket on tmpfs (such as /run/fusebox) to have a fast path")
        }
        // In /dev/shm under its final name (a link is renamed into place), or beside the socket under a
        // temporary name that is itself renamed into place: either way clients never see a part-written file.
        // A grown file has its own name: the file it replaces stays whole until clients have left it.
        let dataPath = linked
            ? "/dev/shm/fusebox-\(getuid())-\(String(boot, radix: 16))-\(String(slots, radix: 16)).state" : "\(path).\(getpid()).tmp"
        let size = StateFileLayout.bytes(slots: slots)
        let fd = open(dataPath, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode_t(readableMode(socketMode)))
        guard fd >= 0 else { throw failure("cannot create \(dataPath)") }
        defer { close(fd) }
        var info = stat()
        fstat(fd, &info)
        guard fchmod(fd, mode_t(readableMode(socketMode))) == 0 else {
            let problem = failure("cannot set the mode of \(dataPath)")
            unlink(dataPath)
            throw problem
        }
        // Allocated, not just sized: a full tmpfs refuses here rather than with SIGBUS at the first write.
        let allocated = posix_fallocate(fd, 0, off_t(size))
        guard allocated == 0 else {
            unlink(dataPath)
            throw Problem(description: "cannot allocate \(size) bytes for \(dataPath): \(String(cString: strerror(allocated)))")
        }
        guard let mapped = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), mapped != MAP_FAILED else {
            let problem = failure("cannot map \(dataPath)")
            unlink(dataPath)
            throw problem
        }
        // Every page is written now, so no post ever takes a page fault that allocates.
        memset(mapped, 0, size)
        let file = StateFile(
            path: path, dataPath: linked ? dataPath : path, staged: dataPath, bootID: boot, slots: slots, base: mapped, size: size, linked: linked,
            identity: [UInt64(info.st_dev), UInt64(info.st_ino)]
        )
        file.writeHeader(staleAfter: staleAfter)
        do throws(Problem) {
            try file.putInPlace()
        } catch {
            munmap(mapped, size)
            unlink(dataPath)
            throw error
        }
        return file
    }

    private init(
        path: String, dataPath: String, staged: String, bootID: UInt64, slots: Int, base: UnsafeMutableRawPointer, size: Int, linked: Bool,
        identity: [UInt64]
    ) {
        self.identity = identity
        self.staged = staged
        self.path = path
        self.dataPath = dataPath
        self.bootID = bootID
        self.slots = slots
        self.base = base
        self.size = size
        self.linked = linked
    }

    // MARK: Posting (under the engine's lock, through `StateFileBoard`)

    public func post(_ state: PostedState, slot: Int) {
        guard slot >= 0, slot < slots else { return }
        write(slot: slot) { fields in
            let name = Array(state.name.utf8.prefix(StateFileLayout.nameBytes))
            fields.storeBytes(of: StateFileLayout.code(of: state.state), toByteOffset: StateFileLayout.stateOffset, as: UInt8.self)
            fields.storeBytes(of: state.admitsLocally ? StateFileLayout.admitsLocallyFlag : 0, toByteOffset: StateFileLayout.flagsOffset, as: UInt8.self)
            fields.storeBytes(of: UInt8(name.count), toByteOffset: StateFileLayout.nameLengthOffset, as: UInt8.self)
            fields.storeBytes(of: state.generation.littleEndian, toByteOffset: StateFileLayout.generationOffset, as: UInt64.self)
            name.withUnsafeBytes { (fields + StateFileLayout.nameOffset).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        }
    }

    /// Empties the slots from `count` on (a reload removed their breakers);
    /// a count past the slots there are empties none.
    public func truncate(to count: Int) {
        for slot in min(max(0, count), slots)..<slots where slotPointer(slot).load(fromByteOffset: StateFileLayout.stateOffset, as: UInt8.self) != 0 {
            write(slot: slot) { fields in
                (fields + StateFileLayout.stateOffset).initializeMemory(as: UInt8.self, repeating: 0, count: StateFileLayout.slotBytes - StateFileLayout.stateOffset)
            }
        }
    }

    /// The seqlock's write side: odd, the fields, even.
    private func write(slot: Int, _ body: (UnsafeMutableRawPointer) -> Void) {
        let fields = slotPointer(slot)
        let sequence = (fields + StateFileLayout.sequenceOffset).assumingMemoryBound(to: Atomic<UInt32>.self)
        let before = sequence.pointee.load(ordering: .relaxed)
        sequence.pointee.store(before &+ 1, ordering: .relaxed)
        atomicMemoryFence(ordering: .sequentiallyConsistent)  // the odd sequence is seen before any field changes
        body(fields)
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        sequence.pointee.store(before &+ 2, ordering: .releasing)
    }

    private func slotPointer(_ slot: Int) -> UnsafeMutableRawPointer {
        base + StateFileLayout.headerBytes + slot * StateFileLayout.slotBytes
    }

    // MARK: Heartbeat and header

    /// Tells clients the sidecar is alive (the socket server's tick calls it).
    public func beat() {
        (base + StateFileLayout.heartbeatOffset).assumingMemoryBound(to: Atomic<UInt64>.self)
            .pointee.store(Self.unixMilliseconds().littleEndian, ordering: .releasing)
    }

    private func writeHeader(staleAfter: Duration) {
        StateFileLayout.magic.withUnsafeBytes { base.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        base.storeBytes(of: StateFileLayout.version.littleEndian, toByteOffset: StateFileLayout.versionOffset, as: UInt32.self)
        base.storeBytes(of: UInt32(StateFileLayout.headerBytes).littleEndian, toByteOffset: StateFileLayout.headerSizeOffset, as: UInt32.self)
        base.storeBytes(of: UInt32(StateFileLayout.slotBytes).littleEndian, toByteOffset: StateFileLayout.slotSizeOffset, as: UInt32.self)
        base.storeBytes(of: UInt32(slots).littleEndian, toByteOffset: StateFileLayout.slotCountOffset, as: UInt32.self)
        base.storeBytes(of: bootID.littleEndian, toByteOffset: StateFileLayout.bootOffset, as: UInt64.self)
        base.storeBytes(of: UInt32(getpid()).littleEndian, toByteOffset: StateFileLayout.pidOffset, as: UInt32.self)
        let staleMs = UInt32(clamping: staleAfter.components.seconds * 1_000 + staleAfter.components.attoseconds / 1_000_000_000_000_000)
        base.storeBytes(of: staleMs.littleEndian, toByteOffset: StateFileLayout.staleAfterOffset, as: UInt32.self)
        beat()
    }

    // MARK: Placing and removing

    /// Renames the new file (or a link to it) over `path`, so a client
    /// opening `path` finds a whole file, old or new, never a part. A link a
    /// killed predecessor left pointing into /dev/shm takes its target along.
    private func putInPlace() throws(Problem) {
        let leftover = Self.linkTarget(path)
        let staged = linked ? "\(path).\(getpid()).link" : self.staged
        if linked {
            unlink(staged)
            guard symlink(dataPath, staged) == 0 else { throw Self.failure("cannot link \(staged) to \(dataPath)") }
        }
        guard rename(staged, path) == 0 else {
            let problem = Self.failure("cannot put the state file at \(path)")
            if linked { unlink(staged) }
            throw problem
        }
        if let leftover, leftover != dataPath { Self.removeOwnFile(leftover) }
        if linked { Self.sweepAbandoned(except: dataPath) }
    }

    /// Removes files in /dev/shm that sidecars of this user left when they
    /// were killed and never restarted on the same socket: the writer's pid
    /// is gone and the heartbeat is over a minute old. Both, because in a pod
    /// /dev/shm may be shared with sidecars whose pids this one cannot see;
    /// those keep their heartbeat fresh. Only this user's regular files are
    /// read: anything else under such a name (a FIFO, a link, another user's
    /// file) is left alone, since any local user can make one.
    public static func sweepAbandoned(except ours: String, folder: String = "/dev/shm", now: UInt64 = unixMilliseconds()) {
        guard let directory = opendir(folder) else { return }
        defer { closedir(directory) }
        let prefix = "fusebox-\(getuid())-"
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            let path = folder + "/" + name
            guard name.hasPrefix(prefix), name.hasSuffix(".state"), path != ours, let header = readOwnHeader(path) else { continue }
            let pid = pid_t(truncatingIfNeeded: header.pid)
            let writerGone = pid <= 0 || (kill(pid, 0) != 0 && errno == ESRCH)
            if writerGone, header.heartbeat < now, now - header.heartbeat > 60_000 { unlink(path) }
        }
    }

    /// The header of a state file at `path` if it is a regular file of this
    /// user's: opened without following a link and without blocking (a FIFO
    /// would hang an ordinary open), then checked on the descriptor itself.
    static func readOwnHeader(_ path: String) -> StateFileContents? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG, info.st_uid == getuid() else { return nil }
        var header = [UInt8](repeating: 0, count: StateFileLayout.headerBytes)
        guard read(fd, &header, header.count) == header.count else { return nil }
        return StateFileContents(header, headerOnly: true)
    }

    /// Removes what a link beside the socket pointed at, when that is a
    /// state file of this sidecar's kind: the canonical path is
    /// `/dev/shm/fusebox-<uid>-….state` and it is this user's regular file.
    /// The link's text alone proves nothing (`/dev/shm/fusebox-/../../etc/…`).
    static func removeOwnFile(_ target: String) {
        guard let resolved = realpath(target, nil) else { return }
        let canonical = String(cString: resolved)
        free(resolved)
        let prefix = "/dev/shm/fusebox-\(getuid())-"
        guard canonical == target, canonical.hasPrefix(prefix), canonical.hasSuffix(".state"),
              !canonical.dropFirst("/dev/shm/".count).contains("/")
        else { return }
        var info = stat()
        guard lstat(canonical, &info) == 0, info.st_mode & S_IFMT == S_IFREG, info.st_uid == getuid() else { return }
        unlink(canonical)
    }

    /// Unmaps and removes the file, and the link to it if `path` still is
    /// ours (a newer sidecar's file is left alone). Call once nothing posts
    /// or beats any more. Only the first call does anything.
    public func remove() {
        guard !removed.exchange(true, ordering: .acquiringAndReleasing) else { return }  // the mapping is gone after the first
        // A heartbeat of 0 is stale at once: a client that still has the file open asks the socket from its next call.
        (base + StateFileLayout.heartbeatOffset).assumingMemoryBound(to: Atomic<UInt64>.self).pointee.store(0, ordering: .releasing)
        if linked {
            if Self.linkTarget(path) == dataPath { unlink(path) }
            unlink(dataPath)
        } else if Self.identity(path: path) == identity {
            unlink(path)
        }
        munmap(base, size)
    }

    // MARK: System helpers

    /// Mode for the state file: the owner reads and writes; group and others
    /// read it when the socket lets them connect.
    static func readableMode(_ socketMode: UInt32) -> UInt32 {
        0o600 | (socketMode & 0o070 != 0 ? 0o040 : 0) | (socketMode & 0o007 != 0 ? 0o004 : 0)
    }

    public static func isMemoryFilesystem(_ directory: String) -> Bool {
        let tmpfs = 0x0102_1994, ramfs = 0x8584_58F6
        let type = fusebox_filesystem_type(directory)
        return type == tmpfs || type == ramfs
    }

    static func linkTarget(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: 4_096)
        let count = readlink(path, &buffer, buffer.count - 1)
        guard count > 0 else { return nil }
        return String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private static func identity(path: String) -> [UInt64]? {
        var info = stat()
        guard lstat(path, &info) == 0 else { return nil }
        return [UInt64(info.st_dev), UInt64(info.st_ino)]
    }

    public static func unixMilliseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return UInt64(now.tv_sec) * 1_000 + UInt64(now.tv_nsec) / 1_000_000
    }

    private static func failure(_ what: String) -> Problem {
        Problem(description: "\(what): \(String(cString: strerror(errno)))")
    }
}

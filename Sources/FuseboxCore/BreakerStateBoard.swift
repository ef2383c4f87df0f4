/// Where the engine posts each breaker's state for clients on the same host
/// to read without asking (the fast path). Called under the engine's lock,
/// at every transition and after a reload, so an implementation does a few
/// memory stores and nothing that can wait: no system calls, no disk.
public protocol BreakerStateBoard: AnyObject, Sendable {
    /// Slot `slot` now holds `state`. Slots follow the configured order.
    func post(_ state: PostedState, slot: Int)
    /// The breakers are now `count` (a new board, or a reload): slots from
    /// `count` on are emptied, and the board makes room for `count` slots if
    /// it has fewer. Called before the breakers are posted again; the one
    /// call that may do more than store into memory, and only at a reload.
    func resize(to count: Int)
}

/// One breaker as the board shows it.
public struct PostedState: Equatable, Sendable {
    public var name: String
    public var state: BreakerState
    public var generation: UInt64
    /// A client may call without asking: the state admits every call and no
    /// budget or in-flight cap needs the sidecar to count it.
    public var admitsLocally: Bool

    public init(name: String, state: BreakerState, generation: UInt64, admitsLocally: Bool) {
        self.name = name
        self.state = state
        self.generation = generation
        self.admitsLocally = admitsLocally
    }
}

extension Breaker {
    var posted: PostedState {
        let open: Bool
        switch state {
        case .closed, .metricsOnly, .disabled: open = false
        case .open, .halfOpen, .forcedOpen: open = true
        }
        return PostedState(name: name, state: state, generation: generation, admitsLocally: !open && policy.budget.isEmpty)
    }
}

extension Registry {
    /// Records `change` of breaker `index` as an event, posts the breaker's
    /// new state and notes its new deadline.
    mutating func transitioned(_ change: Transition, _ index: Int) {
        events.append(.transitioned(change))
        board?.post(breakers[index].posted, slot: index)
        noteDeadline(index, at: change.at)
    }

    /// Posts every breaker (a new board, or a reload that moved them).
    func postAll() {
        guard let board else { return }
        board.resize(to: breakers.count)
        for index in breakers.indices { board.post(breakers[index].posted, slot: index) }
    }
}

extension Engine {
    /// Posts every breaker's state to `board` now and at each change from
    /// now on; nil stops posting.
    public func postStates(to board: (any BreakerStateBoard)?) {
        registry.withLock { registry in
            registry.board = board
            registry.postAll()
        }
    }
}

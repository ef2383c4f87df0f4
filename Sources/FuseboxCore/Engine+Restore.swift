extension Engine {
    /// Takes up what the store recorded before a restart, for the breakers
    /// the running configuration still has (a breaker the configuration no
    /// longer names is dropped): openings and forces come back with reason
    /// `restored`, and a 429's budget pause still running holds again. The
    /// transitions made, in configuration order.
    @discardableResult
    public func restore(_ saved: [String: SavedState]) -> [Transition] {
        decide { registry in registry.restore(saved, at: clock.now()) }
    }
}

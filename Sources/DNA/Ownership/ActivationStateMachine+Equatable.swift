import DNAStore

// The machine's actions compare equal when they tell the driver the same thing, so tests can
// `#expect(step == .wait(until: nil))`. Errors compare by code and message (an underlying
// error is context, not part of the decision); a migration's reply by identity.

extension DNAError {
    /// The same decision: code and message.
    fileprivate func isSame(as other: DNAError) -> Bool { code == other.code && message == other.message }
}

extension ActivationStateMachine.Failure: Equatable where Held: Equatable {
    package static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.held == rhs.held && lhs.error.isSame(as: rhs.error) && lhs.casts == rhs.casts
    }
}

extension ActivationStateMachine.Step: Equatable where Message: Equatable, Held: Equatable, Waiter: Equatable {
    package static func == (lhs: Self, rhs: Self) -> Bool {
        switch (lhs, rhs) {
        case (.handle(let a, let refusedA), .handle(let b, let refusedB)):
            return a == b && refusedA == refusedB
        case (.activate, .activate), (.storeOrder, .storeOrder):
            return true
        case (.commit(let a), .commit(let b)):
            return a == b
        case (.wait(let a), .wait(let b)):
            return a == b
        case (.reset(let failuresA, let a), .reset(let failuresB, let b)):
            return failuresA == failuresB && a == b
        case (
            .stop(let failuresA, let queuedA, let refusedA, let errorA, let waitersA),
            .stop(let failuresB, let queuedB, let refusedB, let errorB, let waitersB)
        ):
            return failuresA == failuresB && queuedA == queuedB && refusedA == refusedB && errorA.isSame(as: errorB) && waitersA == waitersB
        case (.deactivate(let a), .deactivate(let b)):
            return a == b
        case (.migrate(let a, let targetA, let replyA), .migrate(let b, let targetB, let replyB)):
            return a == b && targetA == targetB && replyA === replyB
        case (.didCommit(let a), .didCommit(let b)):
            return a == b
        case (.exit(let a), .exit(let b)):
            return a == b
        default:
            return false
        }
    }
}

extension ActivationStateMachine.ActivatedAction: Equatable where Message: Equatable, Waiter: Equatable {
    package static func == (lhs: Self, rhs: Self) -> Bool {
        switch (lhs, rhs) {
        case (.none, .none):
            return true
        case (.commit(let a), .commit(let b)):
            return a == b
        case (.stop(let queuedA, let errorA, let waitersA), .stop(let queuedB, let errorB, let waitersB)):
            return queuedA == queuedB && errorA.isSame(as: errorB) && waitersA == waitersB
        default:
            return false
        }
    }
}

extension ActivationStateMachine.HandledAction: Equatable where Held: Equatable {
    package static func == (lhs: Self, rhs: Self) -> Bool {
        switch (lhs, rhs) {
        case (.none, .none):
            return true
        case (.commit(let a), .commit(let b)):
            return a == b
        case (.release(let a), .release(let b)):
            return a == b
        case (.fail(let a, let errorA), .fail(let b, let errorB)):
            return a == b && errorA.isSame(as: errorB)
        default:
            return false
        }
    }
}

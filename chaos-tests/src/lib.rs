//! Jepsen-style harness. Not built yet: see the Raft cluster issue.

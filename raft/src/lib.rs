//! Raft cluster state and consensus. Not built yet: see the Raft cluster issue.

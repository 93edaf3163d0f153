//! Partitions as grudges (Jepsen's model): each node drops incoming packets from a set of
//! other nodes. Symmetric partitions hold grudges both ways; a one-way partition only one.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::net::NodeId;
use crate::rng::Rng;

/// For each node, the nodes whose packets it drops.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Grudge(pub BTreeMap<NodeId, BTreeSet<NodeId>>);

impl Grudge {
    fn hate(&mut self, target: NodeId, source: NodeId) {
        if target != source {
            self.0.entry(target).or_default().insert(source);
        }
    }

    /// `node` cannot talk to anyone, nor anyone to it.
    pub fn isolate(node: NodeId, all: &[NodeId]) -> Grudge {
        let rest: Vec<NodeId> = all.iter().copied().filter(|n| *n != node).collect();
        Grudge::split(&[node], &rest)
    }

    /// Two sides that cannot reach each other (nodes in both sides are an error; nodes in
    /// neither keep talking to everyone).
    pub fn split_checked(a: &[NodeId], b: &[NodeId]) -> Result<Grudge> {
        if let Some(n) = a.iter().find(|n| b.contains(n)) {
            return Err(Error::InvalidFault(format!(
                "{n} is on both sides of a partition"
            )));
        }
        Ok(Grudge::split(a, b))
    }

    /// Two sides that cannot reach each other; a node listed on both sides keeps its links.
    pub fn split(a: &[NodeId], b: &[NodeId]) -> Grudge {
        let mut g = Grudge::default();
        for &x in a {
            for &y in b {
                if !a.contains(&y) && !b.contains(&x) {
                    g.hate(x, y);
                    g.hate(y, x);
                }
            }
        }
        g
    }

    /// Packets from `from` to `to` are dropped; the other direction still flows.
    pub fn one_way(from: &[NodeId], to: &[NodeId]) -> Grudge {
        let mut g = Grudge::default();
        for &t in to {
            for &f in from {
                g.hate(t, f);
            }
        }
        g
    }

    /// A random majority and minority (the minority has `(n-1)/2` nodes).
    pub fn majority_minority(all: &[NodeId], rng: &mut Rng) -> Grudge {
        let mut v = all.to_vec();
        rng.shuffle(&mut v);
        let (minority, majority) = v.split_at((all.len().saturating_sub(1)) / 2);
        Grudge::split(majority, minority)
    }

    /// Two halves joined by one node that sees both (Jepsen's "bridge"): no side has a
    /// majority on its own, but the bridge node can reach a majority either way.
    pub fn bridge(all: &[NodeId], rng: &mut Rng) -> Grudge {
        let mut v = all.to_vec();
        rng.shuffle(&mut v);
        let half = v.len() / 2;
        let (a, rest) = v.split_at(half);
        let (bridge, b) = rest
            .split_first()
            .map_or((None, rest), |(x, b)| (Some(*x), b));
        let mut g = Grudge::split(a, b);
        if let Some(x) = bridge {
            g.0.remove(&x);
        }
        g
    }

    /// True when nobody drops anything.
    pub fn is_empty(&self) -> bool {
        self.0.values().all(BTreeSet::is_empty)
    }

    /// Whether packets from `from` reach `to`.
    pub fn allows(&self, from: NodeId, to: NodeId) -> bool {
        !self.0.get(&to).is_some_and(|s| s.contains(&from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: u32) -> Vec<NodeId> {
        (1..=n).map(NodeId).collect()
    }

    #[test]
    fn isolate_cuts_both_directions_only_for_that_node() {
        let g = Grudge::isolate(NodeId(1), &ids(3));
        assert!(!g.allows(NodeId(1), NodeId(2)) && !g.allows(NodeId(2), NodeId(1)));
        assert!(g.allows(NodeId(2), NodeId(3)) && g.allows(NodeId(3), NodeId(2)));
    }

    #[test]
    fn one_way_keeps_the_reverse_direction() {
        let g = Grudge::one_way(&[NodeId(1)], &[NodeId(2)]);
        assert!(!g.allows(NodeId(1), NodeId(2)));
        assert!(g.allows(NodeId(2), NodeId(1)));
    }

    #[test]
    fn majority_side_keeps_a_quorum() {
        let all = ids(5);
        for seed in 0..20 {
            let g = Grudge::majority_minority(&all, &mut Rng::new(seed));
            let cut: Vec<_> = all
                .iter()
                .filter(|n| g.0.get(n).is_some_and(|s| !s.is_empty()))
                .collect();
            assert_eq!(cut.len(), 5, "everyone loses someone");
            let connected = |x: NodeId| all.iter().filter(|y| g.allows(**y, x)).count();
            assert_eq!(all.iter().filter(|x| connected(**x) == 3).count(), 3);
        }
    }

    #[test]
    fn bridge_node_sees_everyone() {
        let all = ids(5);
        let g = Grudge::bridge(&all, &mut Rng::new(7));
        let bridges: Vec<_> = all
            .iter()
            .filter(|x| all.iter().all(|y| g.allows(*y, **x) && g.allows(**x, *y)))
            .collect();
        assert_eq!(bridges.len(), 1);
    }

    #[test]
    fn split_checked_refuses_overlapping_sides() {
        assert!(Grudge::split_checked(&[NodeId(1)], &[NodeId(1), NodeId(2)]).is_err());
    }
}

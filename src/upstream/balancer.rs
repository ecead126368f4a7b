//! Choosing a target: round-robin, least-connections, consistent hash. Each skips targets that
//! are down or already tried by this request.

use std::sync::atomic::{AtomicUsize, Ordering};

use pingora_ketama::{Bucket, Continuum};

use super::Target;

pub enum Balancer {
    /// Targets repeated by weight, interleaved, walked by a shared counter.
    RoundRobin {
        schedule: Vec<usize>,
        next: AtomicUsize,
    },
    /// Fewest requests in flight per unit of weight; ties go round the list.
    LeastConnections { next: AtomicUsize },
    /// Ketama ring: a key keeps its target while that target is up.
    ConsistentHash { ring: Continuum },
}

impl std::fmt::Debug for Balancer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Balancer::RoundRobin { .. } => "RoundRobin",
            Balancer::LeastConnections { .. } => "LeastConnections",
            Balancer::ConsistentHash { .. } => "ConsistentHash",
        })
    }
}

impl Balancer {
    pub fn round_robin(targets: &[Target]) -> Self {
        // Interleave by weight (1,2,3,1,2,3,2,3,3 for weights 1,2,3... ) so heavy targets are
        // not hit in bursts.
        let max = targets.iter().map(|t| t.weight).max().unwrap_or(1);
        let mut schedule = Vec::new();
        for round in 0..max {
            for (i, t) in targets.iter().enumerate() {
                if t.weight > round {
                    schedule.push(i);
                }
            }
        }
        Balancer::RoundRobin {
            schedule,
            next: AtomicUsize::new(0),
        }
    }

    pub fn least_connections() -> Self {
        Balancer::LeastConnections {
            next: AtomicUsize::new(0),
        }
    }

    pub fn consistent_hash(targets: &[Target]) -> Self {
        let buckets: Vec<Bucket> = targets
            .iter()
            .map(|t| Bucket::new(t.address, t.weight))
            .collect();
        Balancer::ConsistentHash {
            ring: Continuum::new(&buckets),
        }
    }

    /// Picks a target among those `usable` says yes to. `key` is used by consistent hashing.
    pub fn pick(
        &self,
        targets: &[Target],
        key: &[u8],
        usable: impl Fn(usize) -> bool,
    ) -> Option<usize> {
        match self {
            Balancer::RoundRobin { schedule, next } => {
                let start = next.fetch_add(1, Ordering::Relaxed);
                (0..schedule.len())
                    .map(|k| schedule[(start + k) % schedule.len()])
                    .find(|&i| usable(i))
            }
            Balancer::LeastConnections { next } => {
                let start = next.fetch_add(1, Ordering::Relaxed);
                let n = targets.len();
                (0..n)
                    .map(|k| (start + k) % n)
                    .filter(|&i| usable(i))
                    // Compare in_flight/weight without division: a/w1 < b/w2 <=> a*w2 < b*w1.
                    .min_by(|&a, &b| {
                        let (ta, tb) = (&targets[a], &targets[b]);
                        (ta.health.in_flight() as u64 * tb.weight as u64)
                            .cmp(&(tb.health.in_flight() as u64 * ta.weight as u64))
                    })
            }
            Balancer::ConsistentHash { ring } => {
                // Walk the ring from the key's point until a usable target; bounded so a ring
                // of unusable targets ends the search.
                let by_address =
                    |addr: &std::net::SocketAddr| targets.iter().position(|t| t.address == *addr);
                ring.node_iter(key)
                    .take(targets.len() * 40)
                    .filter_map(by_address)
                    .find(|&i| usable(i))
                    .or_else(|| (0..targets.len()).find(|&i| usable(i)))
            }
        }
    }
}

//! `AuthRateLimiter`: a bounded per-address budget of failed authentication attempts.
//!
//! Sans-IO: the caller passes `now`, so tests drive time by hand.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::error::RateLimited;

/// Limits for [`AuthRateLimiter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Failed attempts allowed per address within one window; once used up,
    /// attempts are refused until the window ends. At least 1.
    pub max_failures: u32,
    /// Window length, counted from an address's first failure.
    pub window: Duration,
    /// Most addresses tracked at once; when full, the address whose window
    /// started first is forgotten. At least 1.
    pub max_tracked: usize,
}

impl Default for RateLimitConfig {
    /// 10 failures per minute per address, 10 000 addresses tracked.
    fn default() -> Self {
        RateLimitConfig {
            max_failures: 10,
            window: Duration::from_secs(60),
            max_tracked: 10_000,
        }
    }
}

/// Counts failed authentication attempts per peer address in fixed windows.
///
/// IPv4 addresses (and IPv4-mapped IPv6 addresses) are tracked one by one;
/// other IPv6 addresses by their /64 prefix, since one host usually has a
/// whole /64 to pick source addresses from. Successful attempts do not reset
/// the count: a failure budget spent stays spent until its window ends.
///
/// Memory is bounded by [`RateLimitConfig::max_tracked`]; every operation is
/// O(log n) plus the expired entries it drops.
#[derive(Debug)]
pub struct AuthRateLimiter {
    config: RateLimitConfig,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    entries: HashMap<IpAddr, Entry>,
    /// Entries ordered by window start (with a sequence number to break
    /// ties), for expiry and for evicting the oldest.
    by_start: BTreeMap<(Instant, u64), IpAddr>,
    next_seq: u64,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    window_start: Instant,
    seq: u64,
    failures: u32,
}

impl AuthRateLimiter {
    /// A limiter with these limits (zero limits are raised to 1).
    pub fn new(config: RateLimitConfig) -> Self {
        AuthRateLimiter {
            config: RateLimitConfig {
                max_failures: config.max_failures.max(1),
                window: config.window,
                max_tracked: config.max_tracked.max(1),
            },
            state: Mutex::new(State::default()),
        }
    }

    /// The limits in force.
    pub fn config(&self) -> RateLimitConfig {
        self.config
    }

    /// May `peer` attempt to authenticate at `now`? Call before verifying a
    /// token; a refused attempt is not counted again.
    pub fn check(&self, peer: IpAddr, now: Instant) -> Result<(), RateLimited> {
        let bucket = bucket(peer);
        let mut state = self.lock();
        let Some(entry) = state.entries.get(&bucket).copied() else {
            return Ok(());
        };
        if self.expired(entry.window_start, now) {
            state.remove(bucket, entry);
            return Ok(());
        }
        if entry.failures >= self.config.max_failures {
            let retry_after = entry
                .window_start
                .checked_add(self.config.window)
                .map_or(self.config.window, |end| end.saturating_duration_since(now));
            return Err(RateLimited { retry_after });
        }
        Ok(())
    }

    /// Records a failed attempt by `peer` at `now`.
    pub fn record_failure(&self, peer: IpAddr, now: Instant) {
        let bucket = bucket(peer);
        let mut state = self.lock();
        self.purge_expired(&mut state, now);
        if let Some(entry) = state.entries.get_mut(&bucket) {
            entry.failures = entry.failures.saturating_add(1);
            return;
        }
        while state.entries.len() >= self.config.max_tracked {
            let Some(((_, _), oldest)) = state.by_start.pop_first() else {
                break;
            };
            state.entries.remove(&oldest);
        }
        let seq = state.next_seq;
        state.next_seq = state.next_seq.wrapping_add(1);
        state.entries.insert(
            bucket,
            Entry {
                window_start: now,
                seq,
                failures: 1,
            },
        );
        state.by_start.insert((now, seq), bucket);
    }

    /// Number of addresses currently tracked.
    pub fn tracked(&self) -> usize {
        self.lock().entries.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every mutation leaves the two maps consistent before it can panic
        // (none of it panics), so a poisoned lock still holds usable state.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn expired(&self, window_start: Instant, now: Instant) -> bool {
        window_start
            .checked_add(self.config.window)
            .is_some_and(|end| now >= end)
    }

    fn purge_expired(&self, state: &mut State, now: Instant) {
        while let Some((&(start, _), _)) = state.by_start.first_key_value() {
            if !self.expired(start, now) {
                break;
            }
            if let Some(((_, _), addr)) = state.by_start.pop_first() {
                state.entries.remove(&addr);
            }
        }
    }
}

impl State {
    fn remove(&mut self, bucket: IpAddr, entry: Entry) {
        self.entries.remove(&bucket);
        self.by_start.remove(&(entry.window_start, entry.seq));
    }
}

/// The address a peer is counted under.
fn bucket(peer: IpAddr) -> IpAddr {
    match peer {
        IpAddr::V4(_) => peer,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

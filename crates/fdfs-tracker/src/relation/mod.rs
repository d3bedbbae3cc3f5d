//! Tracker ↔ tracker relationship (PROTOCOL.md §4.8): the tracker list
//! learnt from storage JOINs and who leads ([`Relation`], here), and the
//! tasks that keep it current: `probe` resolves and probes the entries of
//! the list that have not answered as trackers yet, `election` elects a
//! leader when none is known (TRACKER_GET_STATUS ordering, then
//! NOTIFY/COMMIT_NEXT_LEADER) and as a follower keeps one connection to
//! the leader with JOIN_LEADER and a PING_LEADER every second, and
//! `sys_files` copies a peer's data files before the first JOIN. The
//! leadership commands other trackers send us are handled in `leader`.
//!
//! A tracker whose list names no other tracker leads by itself at once, so
//! a single-tracker cluster never waits for an election.
//!
//! Any host may JOIN as a storage and list any addresses as trackers, so
//! the list is bounded and an entry only counts once it has answered as a
//! tracker (TRACKER_GET_STATUS): only the addresses of such entries may
//! send the leadership commands (58, 66, 67, 68). Entries that never answer
//! stop being election peers after a few probes, are re-probed slowly, and
//! make room for new entries when the list is full.
//!
//! Outgoing connections are bound to our listening address when it is a
//! specific one: the leader names a follower by the connection's source IP.

mod election;
mod probe;
mod sys_files;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use fdfs_proto::cluster_stat::ConnCounts;
use fdfs_proto::leader_msg::TrackerStatus;
use fdfs_proto::MAX_TRACKERS;

use crate::{now_secs, round_down_300, Tracker};

pub(crate) use election::run;
pub(crate) use probe::watch_list;
pub(crate) use sys_files::copy_sys_files_before_first_join;

/// Between two rounds of the tasks' loops, and between two pings.
const TICK: Duration = Duration::from_secs(1);
/// Entries that answered as trackers; a cluster has at most this many.
pub const MAX_VERIFIED_TRACKERS: usize = MAX_TRACKERS;
/// Entries that have not answered (yet); when full, a new entry replaces
/// the dormant one that failed most, or is dropped.
pub const MAX_UNVERIFIED_TRACKERS: usize = MAX_TRACKERS;
/// Unanswered probes (or failed lookups) after which an entry is dormant:
/// no longer an election peer, only re-probed on its back-off.
pub const PROBES_BEFORE_DORMANT: u32 = 3;
/// Longest wait between two probes of an entry that does not answer.
pub const UNVERIFIED_RETRY_MAX_SECS: u64 = 300;

/// One tracker of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerTracker {
    /// As the storages configure it (`host:port`).
    pub text: String,
    /// None until a host name resolves.
    pub addr: Option<SocketAddr>,
    pub is_self: bool,
    /// Answered TRACKER_GET_STATUS (64) as a tracker (status or ENOENT) at
    /// least once: a peer for good, and its address may send leadership
    /// commands.
    pub verified: bool,
    /// Answered TRACKER_INSTANCE_ID (241) as another tracker, or with an
    /// error status (a C tracker): not us, never asked again.
    pub not_self: bool,
    /// Probes or lookups in a row without a tracker's answer (unverified
    /// entries only).
    pub failures: u32,
    /// When the list task may probe (or look up) an unverified entry next.
    pub next_try: Instant,
    /// What the entry last told us as our follower (TRACKER_CLUSTER_STAT
    /// lists it).
    pub follower: FollowerStat,
}

/// A follower's JOIN_LEADER (58) and latest PING_LEADER (65) facts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FollowerStat {
    /// Its start time (unix seconds).
    pub up_time: i64,
    pub version: String,
    pub connections: ConnCounts,
    /// When its last PING_LEADER came (unix seconds, 0: never).
    pub last_heartbeat_time: i64,
}

impl PeerTracker {
    fn new(text: String, addr: Option<SocketAddr>, is_self: bool, now: Instant) -> Self {
        PeerTracker {
            text,
            addr,
            is_self,
            verified: false,
            not_self: false,
            failures: 0,
            next_try: now,
            follower: FollowerStat::default(),
        }
    }

    /// Unverified and past its probes: not a peer until it answers.
    pub fn is_dormant(&self) -> bool {
        !self.verified && !self.is_self && self.failures >= PROBES_BEFORE_DORMANT
    }

    /// A resolved other tracker that takes part in elections.
    fn is_peer(&self) -> bool {
        self.addr.is_some()
            && !self.is_self
            && (self.verified || self.failures < PROBES_BEFORE_DORMANT)
    }
}

/// Back-off after `failures` unanswered probes: 1, 2, 4 … s, capped.
fn retry_delay(failures: u32) -> Duration {
    let secs = 1u64 << failures.saturating_sub(1).min(16);
    Duration::from_secs(secs.min(UNVERIFIED_RETRY_MAX_SECS))
}

/// What this tracker knows about its peers and the leader.
#[derive(Debug, Default, Clone)]
pub struct Relation {
    /// The tracker list, at most [`MAX_VERIFIED_TRACKERS`] verified and
    /// [`MAX_UNVERIFIED_TRACKERS`] other entries (plus our own).
    pub listed: Vec<PeerTracker>,
    /// Our own address as the other trackers know it.
    pub(crate) self_addr: Option<SocketAddr>,
    /// The elected leader; `None` while an election is due.
    pub(crate) leader: Option<SocketAddr>,
    /// Proposal received by NOTIFY_NEXT_LEADER, awaiting its COMMIT.
    pub(crate) proposed: Option<SocketAddr>,
    /// Bumped on every leader change: connections resend the leader brief.
    pub(crate) leader_gen: u64,
}

impl Relation {
    /// Other trackers that take part in elections: resolved, and verified
    /// or not yet dormant.
    pub fn peers(&self) -> impl Iterator<Item = &PeerTracker> {
        self.listed.iter().filter(|p| p.is_peer())
    }

    /// The other trackers' addresses.
    pub fn peer_addrs(&self) -> Vec<SocketAddr> {
        self.peers().filter_map(|p| p.addr).collect()
    }

    /// True when the list names some other tracker (or a host name we have
    /// not tried to resolve yet, which may be one). A name whose lookup
    /// failed stops counting: a name only the storages can resolve must
    /// not keep a lone tracker from leading.
    pub fn has_peers(&self) -> bool {
        self.peers().next().is_some()
            || self
                .listed
                .iter()
                .any(|p| p.addr.is_none() && p.failures == 0)
    }

    /// True when an election made this tracker the leader.
    pub fn elected_self(&self) -> bool {
        self.leader.is_some() && self.leader == self.self_addr
    }

    /// True when this tracker leads: elected, or alone.
    pub fn is_leader(&self) -> bool {
        self.elected_self() || !self.has_peers()
    }

    /// The leader flag this tracker shows other trackers (GET_STATUS, 64):
    /// elected, or alone in a list the storages gave us. A tracker that has
    /// not heard any list yet (just restarted, no storage JOIN so far) still
    /// serves its storages as leader, but must not claim it to a peer: the
    /// peer's leader would yield to it by rank and both would lose the
    /// storages' view for a round.
    pub fn claims_leadership(&self) -> bool {
        self.elected_self() || (!self.listed.is_empty() && !self.has_peers())
    }

    /// The leader's address, if one is known.
    pub fn leader_addr(&self) -> Option<SocketAddr> {
        if self.leader.is_some() {
            self.leader
        } else if !self.has_peers() {
            self.self_addr
        } else {
            None
        }
    }

    /// True when `addr` is a tracker of our list (ourselves included).
    pub fn knows(&self, addr: SocketAddr) -> bool {
        self.listed.iter().any(|p| p.addr == Some(addr)) || self.self_addr == Some(addr)
    }

    /// Other trackers that answered as trackers.
    pub(crate) fn verified_peers(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.listed
            .iter()
            .filter(|p| p.verified && !p.is_self)
            .filter_map(|p| p.addr)
    }

    /// True when `addr` is an entry that answered as a tracker.
    pub fn is_verified(&self, addr: SocketAddr) -> bool {
        self.verified_peers().any(|a| a == addr)
    }

    /// True when a connection from `ip` may speak for a tracker of our
    /// list: it is the address of an entry that answered as a tracker, or
    /// the address another tracker of this host connects to us from while
    /// such an entry lives on this host (see [`Relation::is_same_host_source`]).
    /// `own_ip` is the address we listen on, when it is a specific one.
    pub fn is_tracker_source(&self, ip: IpAddr, own_ip: Option<IpAddr>) -> bool {
        let ip = ip.to_canonical();
        self.verified_peers().any(|a| a.ip().to_canonical() == ip)
            || (self.is_same_host_source(ip, own_ip)
                && self.verified_peers().any(|a| is_local_ip(a.ip())))
    }

    /// An original tracker does not bind its outgoing sockets (§4.8
    /// quirk), so another tracker of this host connects to us from the
    /// address the kernel picks for ours: our own address, or the loopback
    /// default 127.0.0.1 (::1) when we are on a loopback address.
    pub fn is_same_host_source(&self, ip: IpAddr, own_ip: Option<IpAddr>) -> bool {
        let ip = ip.to_canonical();
        ip == IpAddr::V4(Ipv4Addr::LOCALHOST)
            || ip == IpAddr::V6(Ipv6Addr::LOCALHOST)
            || own_ip.is_some_and(|own| own.to_canonical() == ip)
            || self
                .self_addr
                .is_some_and(|me| me.ip().to_canonical() == ip)
    }

    /// Marks the entry at `addr` as ourselves (found by asking it for its
    /// instance id: behind NAT or a virtual IP no local address matches).
    /// Once we know our address, another alias of ourselves is dropped.
    pub(crate) fn mark_self(&mut self, addr: SocketAddr) {
        if self.self_addr.is_some_and(|me| me != addr) {
            self.listed.retain(|p| p.addr != Some(addr));
            return;
        }
        for p in self.listed.iter_mut().filter(|p| p.addr == Some(addr)) {
            p.is_self = true;
        }
        self.self_addr = Some(addr);
    }

    fn entry_mut(&mut self, text: &str) -> Option<&mut PeerTracker> {
        self.listed.iter_mut().find(|p| p.text == text)
    }

    /// Adds an entry learnt from a JOIN, if the list has room (a dormant
    /// entry gives way). `addr` is its address when the text is a literal
    /// one. Returns true when the list changed.
    pub(crate) fn learn(
        &mut self,
        text: String,
        addr: Option<SocketAddr>,
        is_self: bool,
        now: Instant,
    ) -> bool {
        if addr.is_some_and(|a| {
            self.listed
                .iter()
                .any(|p| p.addr == Some(a) && p.text != text)
        }) {
            // Another spelling of an entry we have.
            return false;
        }
        if let Some(known) = self.entry_mut(&text) {
            // Listed again by a storage: a tracker that was down may be
            // back, so probe it now (it stays out of elections until it
            // answers).
            if !known.verified && !known.is_self {
                known.next_try = now;
            }
            return false;
        }
        if is_self {
            if self.self_addr.is_some_and(|me| Some(me) != addr) {
                // Another alias of ourselves: nothing to learn from it.
                return false;
            }
            if self.self_addr.is_none() {
                self.self_addr = addr;
            }
            self.listed.push(PeerTracker::new(text, addr, true, now));
            return true;
        }
        if self.unverified_count() >= MAX_UNVERIFIED_TRACKERS && !self.evict_dormant() {
            return false;
        }
        self.listed.push(PeerTracker::new(text, addr, false, now));
        true
    }

    fn unverified_count(&self) -> usize {
        self.listed
            .iter()
            .filter(|p| !p.verified && !p.is_self)
            .count()
    }

    /// Drops the dormant entry that failed most (the first of those).
    fn evict_dormant(&mut self) -> bool {
        let victim = self
            .listed
            .iter()
            .enumerate()
            .filter(|(_, p)| p.is_dormant())
            .max_by_key(|(i, p)| (p.failures, std::cmp::Reverse(*i)))
            .map(|(i, _)| i);
        match victim {
            Some(i) => {
                self.listed.remove(i);
                true
            }
            None => false,
        }
    }

    /// The outcome of a probe of `addr`: answered as a tracker or not.
    pub(crate) fn record_probe(&mut self, addr: SocketAddr, answered: bool, now: Instant) {
        let room = self.verified_peers().count() < MAX_VERIFIED_TRACKERS;
        for p in self.listed.iter_mut().filter(|p| p.addr == Some(addr)) {
            if p.verified || p.is_self {
                continue;
            }
            if answered && room {
                p.verified = true;
                p.failures = 0;
            } else {
                p.failures = p.failures.saturating_add(1);
                p.next_try = now + retry_delay(p.failures);
            }
        }
    }

    /// A host-name entry resolved to `addr`. An alias of an entry we
    /// already have, or of ourselves once we know our address, is dropped.
    pub(crate) fn resolved(&mut self, text: &str, addr: SocketAddr, is_self: bool) {
        let duplicate = self
            .listed
            .iter()
            .any(|p| p.addr == Some(addr) && p.text != text)
            || (is_self && self.self_addr.is_some_and(|me| me != addr));
        if duplicate {
            self.listed.retain(|p| p.text != text);
            return;
        }
        if is_self && self.self_addr.is_none() {
            self.self_addr = Some(addr);
        }
        if let Some(p) = self.entry_mut(text) {
            p.addr = Some(addr);
            p.is_self = is_self;
            p.next_try = Instant::now();
        }
    }

    /// A host-name lookup failed.
    pub(crate) fn lookup_failed(&mut self, text: &str, now: Instant) {
        if let Some(p) = self.entry_mut(text) {
            p.failures = p.failures.saturating_add(1);
            p.next_try = now + retry_delay(p.failures);
        }
    }

    /// Unverified entries due for a probe or a lookup; each is pushed back
    /// by `in_flight` so a slow probe is not started twice.
    pub(crate) fn take_due(
        &mut self,
        now: Instant,
        in_flight: Duration,
    ) -> Vec<(String, Option<SocketAddr>)> {
        let mut due = Vec::new();
        for p in self.listed.iter_mut() {
            if !p.verified && !p.is_self && p.next_try <= now {
                p.next_try = now + in_flight;
                due.push((p.text.clone(), p.addr));
            }
        }
        due
    }

    /// True when the 241 probe of `addr` may be skipped.
    pub(crate) fn known_not_self(&self, addr: SocketAddr) -> bool {
        self.listed
            .iter()
            .any(|p| p.addr == Some(addr) && p.not_self)
    }

    pub(crate) fn set_not_self(&mut self, addr: SocketAddr) {
        for p in self.listed.iter_mut().filter(|p| p.addr == Some(addr)) {
            p.not_self = true;
        }
    }

    /// The facts of the follower at `addr`, if it is an entry of the list.
    pub(crate) fn follower_mut(&mut self, addr: SocketAddr) -> Option<&mut FollowerStat> {
        self.listed
            .iter_mut()
            .find(|p| p.addr == Some(addr))
            .map(|p| &mut p.follower)
    }

    pub(crate) fn set_leader(&mut self, leader: Option<SocketAddr>) {
        if self.leader != leader {
            self.leader = leader;
            self.leader_gen += 1;
        }
    }
}

/// True when `ip` is an address of this host (it can be bound).
pub(crate) fn is_local_ip(ip: IpAddr) -> bool {
    std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

impl Tracker {
    /// Remembers the tracker entries of an accepted JOIN body (§4.2: the
    /// only way a tracker learns its peers), as far as the list has room.
    /// Literal addresses are resolved at once; host names wait for the
    /// list task, which also probes every new entry.
    pub(crate) fn learn_trackers(&self, entries: &[String]) {
        let now = Instant::now();
        let mut rel = self.relation();
        let mut added = false;
        for e in entries {
            let text = e.trim().to_string();
            if text.is_empty() {
                continue;
            }
            let addr = text.parse::<SocketAddr>().ok();
            let is_self = addr.is_some_and(|a| self.is_self_addr(a));
            added |= rel.learn(text, addr, is_self, now);
        }
        drop(rel);
        if added {
            self.relation_wake.notify_one();
        }
        // Also re-listed entries are due now.
        self.list_wake.notify_one();
    }

    /// True when `addr` names this tracker: our listening address, or our
    /// port on a local address when we listen on every interface.
    pub(crate) fn is_self_addr(&self, addr: SocketAddr) -> bool {
        let Some(listen) = self.listen_addr.get() else {
            return false;
        };
        if addr.port() != listen.port() {
            return false;
        }
        if listen.ip().is_unspecified() {
            is_local_ip(addr.ip())
        } else {
            addr.ip().to_canonical() == listen.ip().to_canonical()
        }
    }

    /// The address we listen on, when it is a specific one.
    pub(crate) fn own_ip(&self) -> Option<IpAddr> {
        self.listen_addr
            .get()
            .map(|a| a.ip())
            .filter(|ip| !ip.is_unspecified())
    }

    /// This tracker's own election status.
    pub(crate) fn own_status(&self) -> TrackerStatus {
        TrackerStatus {
            if_leader: self.relation().claims_leadership(),
            running_time_secs: round_down_300(now_secs() - self.start_time),
            restart_interval_secs: self.restart_interval_secs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn entry(text: &str, verified: bool) -> PeerTracker {
        PeerTracker {
            verified,
            ..PeerTracker::new(text.into(), text.parse().ok(), false, Instant::now())
        }
    }

    #[test]
    fn alone_means_leader() {
        let mut rel = Relation {
            self_addr: Some(addr("127.0.0.2:22122")),
            ..Relation::default()
        };
        assert!(rel.is_leader());
        // No storage has named the tracker list yet: lead, but do not
        // claim it to other trackers.
        assert!(!rel.claims_leadership());
        rel.learn(
            "127.0.0.2:22122".into(),
            Some(addr("127.0.0.2:22122")),
            true,
            Instant::now(),
        );
        assert!(rel.claims_leadership());
        rel.listed.push(entry("127.0.0.3:22122", false));
        assert!(!rel.is_leader());
        assert_eq!(rel.leader_addr(), None);
        assert!(!rel.claims_leadership());
        rel.set_leader(Some(addr("127.0.0.2:22122")));
        assert!(rel.is_leader());
        assert!(rel.claims_leadership());
        rel.set_leader(Some(addr("127.0.0.3:22122")));
        assert!(!rel.is_leader());
        assert!(!rel.claims_leadership());
        assert_eq!(rel.leader_gen, 2);
    }

    #[test]
    fn unresolved_entries_count_as_peers_until_a_lookup_fails() {
        let mut rel = Relation::default();
        let now = Instant::now();
        rel.learn("tracker-only-storages-know:22122".into(), None, false, now);
        assert!(!rel.is_leader());
        rel.lookup_failed("tracker-only-storages-know:22122", now);
        assert!(rel.is_leader());
    }

    #[test]
    fn an_entry_that_never_answers_goes_dormant_and_one_that_answers_stays() {
        let mut rel = Relation::default();
        let now = Instant::now();
        let (a, b) = (addr("10.0.0.1:22122"), addr("10.0.0.2:22122"));
        rel.learn(a.to_string(), Some(a), false, now);
        rel.learn(b.to_string(), Some(b), false, now);
        assert_eq!(rel.peer_addrs(), [a, b]);
        assert!(!rel.is_tracker_source(a.ip(), None), "not verified yet");
        rel.record_probe(a, true, now);
        for _ in 0..PROBES_BEFORE_DORMANT {
            rel.record_probe(b, false, now);
        }
        assert_eq!(rel.peer_addrs(), [a]);
        assert!(rel.is_tracker_source(a.ip(), None));
        assert!(!rel.is_tracker_source(b.ip(), None));
        // A verified tracker that goes down stays a peer.
        rel.record_probe(a, false, now);
        assert_eq!(rel.peer_addrs(), [a]);
        // The dormant entry is re-probed on its back-off only.
        assert!(rel.take_due(now, Duration::from_secs(10)).is_empty());
        let later = now + Duration::from_secs(4);
        assert_eq!(
            rel.take_due(later, Duration::from_secs(10)),
            [(b.to_string(), Some(b))]
        );
        // It answers at last: a peer again.
        rel.record_probe(b, true, later);
        assert_eq!(rel.peer_addrs(), [a, b]);
        assert_eq!(retry_delay(1), Duration::from_secs(1));
        assert_eq!(retry_delay(3), Duration::from_secs(4));
        assert_eq!(
            retry_delay(40),
            Duration::from_secs(UNVERIFIED_RETRY_MAX_SECS)
        );
    }

    #[test]
    fn the_list_is_bounded_and_dormant_entries_make_room() {
        let mut rel = Relation::default();
        let now = Instant::now();
        let fake = |i: usize| addr(&format!("192.0.2.{}:{}", i % 250, 1000 + i));
        for i in 0..200 {
            rel.learn(fake(i).to_string(), Some(fake(i)), false, now);
        }
        assert_eq!(rel.listed.len(), MAX_UNVERIFIED_TRACKERS);
        // Nothing is dormant yet: a new entry has no room.
        let real = addr("10.0.0.9:22122");
        assert!(!rel.learn(real.to_string(), Some(real), false, now));
        for i in 0..MAX_UNVERIFIED_TRACKERS {
            for _ in 0..PROBES_BEFORE_DORMANT {
                rel.record_probe(fake(i), false, now);
            }
        }
        assert!(!rel.has_peers());
        assert!(rel.learn(real.to_string(), Some(real), false, now));
        assert_eq!(rel.listed.len(), MAX_UNVERIFIED_TRACKERS);
        rel.record_probe(real, true, now);
        assert_eq!(rel.peer_addrs(), [real]);
        // Verified entries never give way, and there are at most 16.
        for i in 0..40 {
            let a = addr(&format!("10.1.0.{i}:22122"));
            rel.learn(a.to_string(), Some(a), false, now);
            rel.record_probe(a, true, now);
        }
        assert!(rel.is_verified(real));
        assert_eq!(rel.verified_peers().count(), MAX_VERIFIED_TRACKERS);
        assert!(rel.listed.len() <= MAX_VERIFIED_TRACKERS + MAX_UNVERIFIED_TRACKERS);
    }

    #[test]
    fn aliases_of_ourselves_and_respellings_are_not_kept() {
        let mut rel = Relation::default();
        let now = Instant::now();
        let me = addr("127.0.0.2:22122");
        assert!(rel.learn(me.to_string(), Some(me), true, now));
        assert_eq!(rel.self_addr, Some(me));
        let alias = addr("127.0.0.3:22122");
        assert!(!rel.learn(alias.to_string(), Some(alias), true, now));
        assert!(!rel.learn("127.0.0.2:022122".into(), Some(me), false, now));
        assert_eq!(rel.listed.len(), 1);
    }
}

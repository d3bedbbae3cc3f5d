//! Free trunk space as sorted sets, no I/O: best-fit allocation, split, merge of neighbours, quarantine.
//!
//! The pool holds the free slots of every trunk file of this storage's
//! group, per store path, indexed twice: by `(store path, size, trunk id,
//! offset)` for the best fit and by `(store path, trunk id, offset)` for
//! overlap checks and neighbour merges. It never touches the disk:
//! [`crate::trunk::space`] writes the binlog line of a change first and then
//! applies the change here, so a plan ([`Pool::plan_alloc`],
//! [`Pool::plan_free`]) is separate from its application.
//!
//! Allocation mirrors the original's `trunk_alloc_space` + `trunk_split`
//! (trunk_mem.c): the smallest free slot of the store path that is at least
//! the needed size; the slot leaves the pool whole (a `D` line of the whole
//! slot) and, when what is left after the needed size is at least
//! `slot_min_size`, the rest comes back as a new free slot (an `A` line)
//! starting right after the allocation. A smaller rest stays with the
//! allocation, so the caller may get a slot bigger than it asked for; the
//! size in the trunk name is the slot's size. Ties between equal sizes go
//! to the lowest trunk id, then offset (the original takes its list head;
//! any choice is valid, ours is deterministic).
//!
//! Merging (`trunk_free_space_merge`) happens when a slot is freed, not in
//! a later compaction pass as in the original: the freed slot absorbs its
//! free neighbours in the same trunk file. Quarantined slots are never
//! merged with usable ones, so quarantine never spreads nor shrinks by a
//! merge.

use std::collections::{BTreeMap, BTreeSet};

use fdfs_proto::trunk::TrunkLocation;
use fdfs_proto::trunk_binlog::slot_end;

/// `(store_path_index, trunk_file_id, offset)`: where a free slot starts.
type PosKey = (u8, u32, u32);
/// `(store_path_index, size, trunk_file_id, offset)`: best-fit order.
type SizeKey = (u8, u32, u32, u32);

/// Offsets and sizes are 32-bit signed in the original's records.
const OFFSET_LIMIT_BYTES: u64 = 1 << 31;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Free {
    size: u32,
    quarantined: bool,
}

/// Why the pool refused a change; nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    #[error("slot {0:?} has size 0 or ends past the 31-bit offset range")]
    Invalid(TrunkLocation),
    #[error("slot {slot:?} overlaps free slot {free:?}")]
    AlreadyFree {
        slot: TrunkLocation,
        free: TrunkLocation,
    },
    #[error("slot {0:?} is not inside one free slot")]
    NotFree(TrunkLocation),
    #[error("slot {slot:?} names trunk file {} under {:02X}/{:02X}, known under {:02X}/{:02X}", slot.trunk_file_id, slot.sub_path_high, slot.sub_path_low, known.0, known.1)]
    DirMismatch {
        slot: TrunkLocation,
        known: (u8, u8),
    },
    #[error("slot {0:?} is not quarantined")]
    NotQuarantined(TrunkLocation),
}

/// What an allocation does to the pool: `whole` leaves it, `remainder`
/// (if any) comes back, `taken` is handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllocPlan {
    pub whole: TrunkLocation,
    pub taken: TrunkLocation,
    pub remainder: Option<TrunkLocation>,
}

/// What a free does: the `absorbed` free neighbours leave the pool and
/// `merged` (the freed slot grown by them) enters it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreePlan {
    pub absorbed: Vec<TrunkLocation>,
    pub merged: TrunkLocation,
}

/// The free space of a group's trunk files.
#[derive(Debug, Clone, Default)]
pub struct Pool {
    slot_min_size: u32,
    by_pos: BTreeMap<PosKey, Free>,
    /// Usable (not quarantined) slots only.
    by_size: BTreeSet<SizeKey>,
    /// Every trunk file seen, `(store path, id)` → `(high, low)` directories.
    files: BTreeMap<(u8, u32), (u8, u8)>,
    usable_bytes: u64,
    quarantined_bytes: u64,
}

impl Pool {
    /// `slot_min_size_bytes`: a split never leaves a free slot smaller.
    pub fn new(slot_min_size_bytes: u32) -> Self {
        Pool {
            slot_min_size: slot_min_size_bytes.max(1),
            ..Pool::default()
        }
    }

    /// Free bytes that can be allocated.
    pub fn free_bytes(&self) -> u64 {
        self.usable_bytes
    }

    /// Free bytes held back by quarantine.
    pub fn quarantined_bytes(&self) -> u64 {
        self.quarantined_bytes
    }

    /// Number of free slots, quarantined ones included.
    pub fn slot_count(&self) -> usize {
        self.by_pos.len()
    }

    /// Every free slot in position order, with its quarantine flag.
    pub fn slots(&self) -> Vec<(TrunkLocation, bool)> {
        self.by_pos
            .iter()
            .map(|(k, f)| (self.location(*k, f.size), f.quarantined))
            .collect()
    }

    /// The free slots of one trunk file, in offset order.
    pub fn slots_of(&self, store_path_index: u8, trunk_file_id: u32) -> Vec<(TrunkLocation, bool)> {
        self.by_pos
            .range(
                (store_path_index, trunk_file_id, 0)..=(store_path_index, trunk_file_id, u32::MAX),
            )
            .map(|(k, f)| (self.location(*k, f.size), f.quarantined))
            .collect()
    }

    /// Every trunk file seen: `(store path, id, high, low)`.
    pub fn files(&self) -> Vec<(u8, u32, u8, u8)> {
        self.files
            .iter()
            .map(|(&(p, id), &(h, l))| (p, id, h, l))
            .collect()
    }

    pub fn knows_file(&self, store_path_index: u8, trunk_file_id: u32) -> bool {
        self.files.contains_key(&(store_path_index, trunk_file_id))
    }

    /// Forgets a trunk file (deleted when wholly free) and its free slots.
    pub fn forget_file(&mut self, store_path_index: u8, trunk_file_id: u32) {
        let keys: Vec<PosKey> = self
            .by_pos
            .range(
                (store_path_index, trunk_file_id, 0)..=(store_path_index, trunk_file_id, u32::MAX),
            )
            .map(|(k, _)| *k)
            .collect();
        for k in keys {
            self.remove_raw(k);
        }
        self.files.remove(&(store_path_index, trunk_file_id));
    }

    /// Empties the pool (a member before a full binlog push).
    pub fn clear(&mut self) {
        *self = Pool::new(self.slot_min_size);
    }

    fn location(&self, k: PosKey, size: u32) -> TrunkLocation {
        let (high, low) = self.files.get(&(k.0, k.1)).copied().unwrap_or_default();
        TrunkLocation {
            store_path_index: k.0,
            sub_path_high: high,
            sub_path_low: low,
            trunk_file_id: k.1,
            offset: k.2,
            size,
        }
    }

    fn key(slot: &TrunkLocation) -> PosKey {
        (slot.store_path_index, slot.trunk_file_id, slot.offset)
    }

    fn insert_raw(&mut self, k: PosKey, f: Free) {
        if f.quarantined {
            self.quarantined_bytes += u64::from(f.size);
        } else {
            self.usable_bytes += u64::from(f.size);
            self.by_size.insert((k.0, f.size, k.1, k.2));
        }
        self.by_pos.insert(k, f);
    }

    fn remove_raw(&mut self, k: PosKey) -> Option<Free> {
        let f = self.by_pos.remove(&k)?;
        if f.quarantined {
            self.quarantined_bytes -= u64::from(f.size);
        } else {
            self.usable_bytes -= u64::from(f.size);
            self.by_size.remove(&(k.0, f.size, k.1, k.2));
        }
        Some(f)
    }

    fn validate(&self, slot: &TrunkLocation) -> Result<(), PoolError> {
        if slot.size == 0 || slot_end(slot) > OFFSET_LIMIT_BYTES {
            return Err(PoolError::Invalid(*slot));
        }
        match self.files.get(&(slot.store_path_index, slot.trunk_file_id)) {
            Some(&known) if known != (slot.sub_path_high, slot.sub_path_low) => {
                Err(PoolError::DirMismatch { slot: *slot, known })
            }
            _ => Ok(()),
        }
    }

    fn note_file(&mut self, slot: &TrunkLocation) {
        self.files
            .entry((slot.store_path_index, slot.trunk_file_id))
            .or_insert((slot.sub_path_high, slot.sub_path_low));
    }

    /// Records the trunk file of `slot` as known (its space may be all
    /// allocated), refusing other directories than the ones seen first.
    pub fn remember_file(&mut self, slot: &TrunkLocation) -> Result<(), PoolError> {
        self.validate(slot)?;
        self.note_file(slot);
        Ok(())
    }

    /// The free slot starting at or before `k` in the same trunk file.
    fn at_or_before(&self, k: PosKey) -> Option<(PosKey, Free)> {
        self.by_pos
            .range((k.0, k.1, 0)..=k)
            .next_back()
            .map(|(k, f)| (*k, *f))
    }

    /// A free slot sharing a byte with `slot`, if any.
    pub fn overlapping(&self, slot: &TrunkLocation) -> Option<TrunkLocation> {
        let k = Self::key(slot);
        if let Some((pk, f)) = self.at_or_before(k) {
            if u64::from(pk.2) + u64::from(f.size) > u64::from(slot.offset) {
                return Some(self.location(pk, f.size));
            }
        }
        let end = slot_end(slot);
        self.by_pos
            .range((k.0, k.1, slot.offset.saturating_add(1))..=(k.0, k.1, u32::MAX))
            .next()
            .filter(|(nk, _)| u64::from(nk.2) < end)
            .map(|(nk, f)| self.location(*nk, f.size))
    }

    /// Puts a slot into the pool as it is (an `A` line replayed, a new
    /// trunk file, a snapshot line). Refuses a slot overlapping free space.
    pub fn add(&mut self, slot: &TrunkLocation, quarantined: bool) -> Result<(), PoolError> {
        self.validate(slot)?;
        if let Some(free) = self.overlapping(slot) {
            return Err(PoolError::AlreadyFree { slot: *slot, free });
        }
        self.note_file(slot);
        self.insert_raw(
            Self::key(slot),
            Free {
                size: slot.size,
                quarantined,
            },
        );
        Ok(())
    }

    /// Takes a slot out of the pool (a `D` line replayed). It must lie
    /// inside one free slot; the parts of that slot around it stay free,
    /// quarantined or not as the slot was. The original's lines always
    /// name a whole free slot; a part is accepted so a hand-edited or
    /// foreign binlog still replays to the same occupied bytes.
    pub fn take(&mut self, slot: &TrunkLocation) -> Result<(), PoolError> {
        self.validate(slot)?;
        let k = Self::key(slot);
        let Some((fk, f)) = self.at_or_before(k) else {
            return Err(PoolError::NotFree(*slot));
        };
        let f_end = u64::from(fk.2) + u64::from(f.size);
        let end = slot_end(slot);
        if end > f_end {
            return Err(PoolError::NotFree(*slot));
        }
        self.note_file(slot);
        self.remove_raw(fk);
        if slot.offset > fk.2 {
            let left = Free {
                size: slot.offset - fk.2,
                quarantined: f.quarantined,
            };
            self.insert_raw(fk, left);
        }
        if end < f_end {
            let right = Free {
                // Both ends are below 2^31.
                size: (f_end - end) as u32,
                quarantined: f.quarantined,
            };
            self.insert_raw((k.0, k.1, end as u32), right);
        }
        Ok(())
    }

    /// The best fit for `need` bytes in a store path, or None when no
    /// usable free slot is big enough (a new trunk file is needed).
    pub fn plan_alloc(&self, store_path_index: u8, need: u32) -> Option<AllocPlan> {
        let need = need.max(1);
        let &(p, size, id, offset) = self
            .by_size
            .range(
                (store_path_index, need, 0, 0)..=(store_path_index, u32::MAX, u32::MAX, u32::MAX),
            )
            .next()?;
        let whole = self.location((p, id, offset), size);
        let rest = size - need;
        if rest < self.slot_min_size {
            return Some(AllocPlan {
                whole,
                taken: whole,
                remainder: None,
            });
        }
        let taken = TrunkLocation {
            size: need,
            ..whole
        };
        let remainder = TrunkLocation {
            offset: offset + need,
            size: rest,
            ..whole
        };
        Some(AllocPlan {
            whole,
            taken,
            remainder: Some(remainder),
        })
    }

    /// Applies a plan from [`Pool::plan_alloc`] (made on this pool, with no
    /// change in between).
    pub fn apply_alloc(&mut self, plan: &AllocPlan) -> Result<(), PoolError> {
        self.take(&plan.whole)?;
        if let Some(r) = plan.remainder {
            self.add(&r, false)?;
        }
        Ok(())
    }

    /// Allocates `need` bytes: plan and apply in one.
    pub fn alloc(&mut self, store_path_index: u8, need: u32) -> Option<AllocPlan> {
        let plan = self.plan_alloc(store_path_index, need)?;
        self.apply_alloc(&plan).ok()?;
        Some(plan)
    }

    /// What freeing `slot` does. [`PoolError::AlreadyFree`] when any of its
    /// bytes is free already (a double free). With `merge`, usable free
    /// neighbours that touch it join it.
    pub fn plan_free(&self, slot: &TrunkLocation, merge: bool) -> Result<FreePlan, PoolError> {
        self.validate(slot)?;
        if let Some(free) = self.overlapping(slot) {
            return Err(PoolError::AlreadyFree { slot: *slot, free });
        }
        let mut plan = FreePlan {
            absorbed: Vec::new(),
            merged: *slot,
        };
        if !merge {
            return Ok(plan);
        }
        let k = Self::key(slot);
        if let Some((lk, lf)) = self.at_or_before(k) {
            if !lf.quarantined && u64::from(lk.2) + u64::from(lf.size) == u64::from(slot.offset) {
                let left = self.location(lk, lf.size);
                plan.merged.offset = left.offset;
                plan.merged.size += left.size;
                plan.absorbed.push(left);
            }
        }
        let end = slot_end(slot);
        if end < OFFSET_LIMIT_BYTES {
            let rk = (k.0, k.1, end as u32);
            if let Some(rf) = self.by_pos.get(&rk).filter(|f| !f.quarantined) {
                plan.merged.size += rf.size;
                plan.absorbed.push(self.location(rk, rf.size));
            }
        }
        Ok(plan)
    }

    /// Applies a plan from [`Pool::plan_free`].
    pub fn apply_free(&mut self, plan: &FreePlan) -> Result<(), PoolError> {
        for a in &plan.absorbed {
            self.take(a)?;
        }
        self.add(&plan.merged, false)
    }

    /// Frees a slot: plan and apply in one.
    pub fn free(&mut self, slot: &TrunkLocation, merge: bool) -> Result<FreePlan, PoolError> {
        let plan = self.plan_free(slot, merge)?;
        self.apply_free(&plan)?;
        Ok(plan)
    }

    /// All free space becomes quarantined: never allocated, never merged.
    pub fn quarantine_all(&mut self) {
        let keys: Vec<PosKey> = self.by_pos.keys().copied().collect();
        for k in keys {
            if let Some(mut f) = self.remove_raw(k) {
                f.quarantined = true;
                self.insert_raw(k, f);
            }
        }
    }

    /// Quarantines every free slot sharing a byte with `slot` (a saved
    /// quarantine reloaded). Returns how many.
    pub fn quarantine_overlapping(&mut self, slot: &TrunkLocation) -> usize {
        let k = Self::key(slot);
        let start = self.at_or_before(k).map_or(k, |(pk, _)| pk);
        let end = slot_end(slot);
        let keys: Vec<PosKey> = self
            .by_pos
            .range(start..=(k.0, k.1, u32::MAX))
            .take_while(|(pk, _)| u64::from(pk.2) < end)
            .filter(|(pk, f)| {
                u64::from(pk.2) + u64::from(f.size) > u64::from(slot.offset) && !f.quarantined
            })
            .map(|(pk, _)| *pk)
            .collect();
        for k in &keys {
            if let Some(mut f) = self.remove_raw(*k) {
                f.quarantined = true;
                self.insert_raw(*k, f);
            }
        }
        keys.len()
    }

    /// The quarantined free slots, in position order.
    pub fn quarantined(&self) -> Vec<TrunkLocation> {
        self.by_pos
            .iter()
            .filter(|(_, f)| f.quarantined)
            .map(|(k, f)| self.location(*k, f.size))
            .collect()
    }

    /// Makes one quarantined slot (exactly as listed) usable again.
    pub fn release_quarantine(&mut self, slot: &TrunkLocation) -> Result<(), PoolError> {
        let k = Self::key(slot);
        match self.by_pos.get(&k) {
            Some(f) if f.quarantined && f.size == slot.size => {}
            _ => return Err(PoolError::NotQuarantined(*slot)),
        }
        if let Some(mut f) = self.remove_raw(k) {
            f.quarantined = false;
            self.insert_raw(k, f);
        }
        Ok(())
    }

    /// True when `slot` is quarantined as listed.
    pub fn is_quarantined(&self, slot: &TrunkLocation) -> bool {
        self.by_pos
            .get(&Self::key(slot))
            .is_some_and(|f| f.quarantined && f.size == slot.size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fdfs_proto::trunk::slot_size_for;
    use proptest::prelude::*;

    const FILE: u32 = 64 * 1024;
    const MIN: u32 = 256;

    fn file(path: u8, id: u32) -> TrunkLocation {
        TrunkLocation {
            store_path_index: path,
            sub_path_high: (id % 3) as u8,
            sub_path_low: (id % 5) as u8,
            trunk_file_id: id,
            offset: 0,
            size: FILE,
        }
    }

    #[test]
    fn best_fit_splits_and_keeps_small_rest_with_the_allocation() {
        let mut p = Pool::new(MIN);
        p.add(&file(0, 1), false).unwrap();
        let a = p.alloc(0, 1000).unwrap();
        assert_eq!(a.whole, file(0, 1));
        assert_eq!((a.taken.offset, a.taken.size), (0, 1000));
        assert_eq!(a.remainder.unwrap().offset, 1000);
        assert_eq!(p.free_bytes(), u64::from(FILE - 1000));
        // A rest below slot_min_size goes with the allocation.
        let b = p.alloc(0, FILE - 1000 - (MIN - 1)).unwrap();
        assert_eq!(b.taken.size, FILE - 1000);
        assert_eq!(b.remainder, None);
        assert_eq!(p.free_bytes(), 0);
        assert!(p.alloc(0, 1).is_none());
        // The smallest slot that fits wins.
        p.free(&a.taken, false).unwrap();
        p.add(&file(0, 2), false).unwrap();
        let c = p.alloc(0, 500).unwrap();
        assert_eq!(c.whole, a.taken);
        // Another store path has its own space.
        assert!(p.alloc(1, 1).is_none());
    }

    #[test]
    fn double_free_and_overlap_are_refused() {
        let mut p = Pool::new(MIN);
        p.add(&file(0, 1), false).unwrap();
        let a = p.alloc(0, 1000).unwrap().taken;
        assert!(matches!(
            p.add(&file(0, 1), false),
            Err(PoolError::AlreadyFree { .. })
        ));
        p.free(&a, true).unwrap();
        assert!(matches!(
            p.free(&a, true),
            Err(PoolError::AlreadyFree { .. })
        ));
        let inner = TrunkLocation {
            offset: 10,
            size: 10,
            ..a
        };
        assert!(p.free(&inner, false).is_err());
        let mut other_dirs = a;
        other_dirs.sub_path_high += 1;
        assert!(matches!(
            p.take(&other_dirs),
            Err(PoolError::DirMismatch { .. })
        ));
        assert_eq!(p.free_bytes(), u64::from(FILE));
    }

    #[test]
    fn merge_joins_both_neighbours() {
        let mut p = Pool::new(MIN);
        p.add(&file(0, 1), false).unwrap();
        let a = p.alloc(0, 1000).unwrap().taken;
        let b = p.alloc(0, 1000).unwrap().taken;
        let c = p.alloc(0, 1000).unwrap().taken;
        p.free(&a, true).unwrap();
        p.free(&c, true).unwrap();
        assert_eq!(p.slot_count(), 2);
        let plan = p.free(&b, true).unwrap();
        assert_eq!(plan.absorbed.len(), 2);
        assert_eq!(plan.merged, file(0, 1));
        assert_eq!(p.slots(), vec![(file(0, 1), false)]);
        // Without merge the pieces stay apart.
        let mut q = Pool::new(MIN);
        q.add(&file(0, 1), false).unwrap();
        let a = q.alloc(0, 1000).unwrap().taken;
        q.free(&a, false).unwrap();
        assert_eq!(q.slot_count(), 2);
    }

    #[test]
    fn quarantine_is_never_allocated_nor_merged() {
        let mut p = Pool::new(MIN);
        p.add(&file(0, 1), false).unwrap();
        let a = p.alloc(0, 1000).unwrap().taken;
        p.quarantine_all();
        assert_eq!(p.free_bytes(), 0);
        assert_eq!(p.quarantined_bytes(), u64::from(FILE - 1000));
        assert!(p.alloc(0, 1).is_none());
        let plan = p.free(&a, true).unwrap();
        assert!(plan.absorbed.is_empty());
        // Only the freed slot is usable.
        assert_eq!(p.alloc(0, 1000).unwrap().taken, a);
        let q = p.quarantined();
        assert_eq!(q.len(), 1);
        p.release_quarantine(&q[0]).unwrap();
        assert!(p.release_quarantine(&q[0]).is_err());
        assert_eq!(p.free_bytes(), u64::from(FILE - 1000));
        // A reloaded quarantine range marks what overlaps it.
        p.add(&file(0, 2), false).unwrap();
        assert_eq!(
            p.quarantine_overlapping(&TrunkLocation {
                offset: 5,
                size: 1,
                ..file(0, 2)
            }),
            1
        );
        assert!(p.is_quarantined(&file(0, 2)));
    }

    #[test]
    fn take_of_a_part_keeps_the_rest_free() {
        let mut p = Pool::new(MIN);
        p.add(&file(0, 1), true).unwrap();
        let part = TrunkLocation {
            offset: 4096,
            size: 512,
            ..file(0, 1)
        };
        p.take(&part).unwrap();
        assert_eq!(p.slot_count(), 2);
        assert_eq!(p.quarantined_bytes(), u64::from(FILE - 512));
        assert!(p.take(&part).is_err());
        assert!(p
            .take(&TrunkLocation {
                offset: 4000,
                size: 200,
                ..part
            })
            .is_err());
    }

    #[derive(Debug, Clone)]
    enum Op {
        NewFile(u8),
        Alloc(u8, u32),
        Free(usize, bool),
        DoubleFree(usize),
        Quarantine,
        Release(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            1 => (0u8..2).prop_map(Op::NewFile),
            6 => (0u8..2, 0u32..20_000).prop_map(|(p, s)| Op::Alloc(p, s)),
            4 => (any::<usize>(), any::<bool>()).prop_map(|(i, m)| Op::Free(i, m)),
            1 => any::<usize>().prop_map(Op::DoubleFree),
            1 => Just(Op::Quarantine),
            1 => any::<usize>().prop_map(Op::Release),
        ]
    }

    proptest! {
        #[test]
        fn never_overlapping_and_bytes_add_up(ops in proptest::collection::vec(op(), 1..120)) {
            let mut p = Pool::new(MIN);
            let mut next_id = 1u32;
            let mut files: Vec<TrunkLocation> = Vec::new();
            let mut held: Vec<TrunkLocation> = Vec::new();
            for op in ops {
                match op {
                    Op::NewFile(path) => {
                        let f = file(path, next_id);
                        next_id += 1;
                        p.add(&f, false).unwrap();
                        files.push(f);
                    }
                    Op::Alloc(path, size) => {
                        let need = slot_size_for(u64::from(size), u64::from(MIN), 0) as u32;
                        if let Some(a) = p.alloc(path, need) {
                            prop_assert!(a.taken.size >= need);
                            prop_assert_eq!(a.taken.store_path_index, path);
                            for h in &held {
                                let disjoint = h.store_path_index != a.taken.store_path_index
                                    || h.trunk_file_id != a.taken.trunk_file_id
                                    || slot_end(h) <= u64::from(a.taken.offset)
                                    || slot_end(&a.taken) <= u64::from(h.offset);
                                prop_assert!(disjoint, "{:?} overlaps held {:?}", a.taken, h);
                            }
                            held.push(a.taken);
                        }
                    }
                    Op::Free(i, merge) if !held.is_empty() => {
                        let s = held.swap_remove(i % held.len());
                        p.free(&s, merge).unwrap();
                    }
                    Op::DoubleFree(i) => {
                        let slots = p.slots();
                        if !slots.is_empty() {
                            let (s, _) = slots[i % slots.len()];
                            let before = (p.free_bytes(), p.quarantined_bytes());
                            prop_assert!(p.free(&s, true).is_err());
                            prop_assert_eq!(before, (p.free_bytes(), p.quarantined_bytes()));
                        }
                    }
                    Op::Quarantine => p.quarantine_all(),
                    Op::Release(i) => {
                        let q = p.quarantined();
                        if !q.is_empty() {
                            p.release_quarantine(&q[i % q.len()]).unwrap();
                        }
                    }
                    Op::Free(..) => {}
                }
                // Per trunk file: free + held bytes = trunk file size, and
                // free slots neither overlap each other nor held ones.
                let slots = p.slots();
                let mut total_free = 0u64;
                for f in &files {
                    let mut spans: Vec<(u64, u64)> = slots.iter()
                        .filter(|(s, _)| s.store_path_index == f.store_path_index && s.trunk_file_id == f.trunk_file_id)
                        .map(|(s, _)| (u64::from(s.offset), slot_end(s)))
                        .chain(held.iter()
                            .filter(|s| s.store_path_index == f.store_path_index && s.trunk_file_id == f.trunk_file_id)
                            .map(|s| (u64::from(s.offset), slot_end(s))))
                        .collect();
                    spans.sort_unstable();
                    let mut at = 0u64;
                    for (start, end) in spans {
                        prop_assert_eq!(start, at, "gap or overlap in file {}", f.trunk_file_id);
                        at = end;
                    }
                    prop_assert_eq!(at, u64::from(FILE));
                }
                for (s, _) in &slots {
                    total_free += u64::from(s.size);
                }
                prop_assert_eq!(total_free, p.free_bytes() + p.quarantined_bytes());
            }
        }
    }
}

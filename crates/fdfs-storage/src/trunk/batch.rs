//! The trunk server's own small uploads, stored in batches. While one batch
//! is on a writer thread, the uploads that arrive wait and go together into
//! the next one. A batch makes one trunk binlog write for its allocations,
//! one side-file write for them and one for their confirms, one positioned
//! write for the content and headers of slots that lie end to end, and one
//! storage binlog write for the CREATE records, where one upload at a time
//! makes five writes each. Every upload keeps its order of steps: its
//! allocation lines, then content and header, then its confirm, then its
//! CREATE record, then its answer.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use fdfs_proto::{Status, TrunkLocation};
use tokio::sync::oneshot;

use super::client::{SlotJob, StagedUpload};
use super::role::Alloc;
use crate::error::{OpError, OpResult};
use crate::state::{lock, Storage};

/// A stored upload's name and mtime; `None` when the space needs a new
/// trunk file first.
pub(super) type Stored = Option<(String, i64)>;

/// One in-memory upload to store in a slot of store path `index`.
pub(super) struct Upload {
    pub job: SlotJob,
    pub index: u8,
    pub body: Bytes,
}

struct Waiting {
    upload: Upload,
    answer: oneshot::Sender<OpResult<Stored>>,
}

/// At most this many uploads per batch: the first uploads of a batch do
/// not wait long for its last ones to be stored.
const MAX_BATCH_UPLOADS: usize = 128;

#[derive(Default)]
struct Queue {
    waiting: Vec<Waiting>,
    /// A batch job is queued or running; it queues the next one itself.
    draining: bool,
}

/// The uploads waiting for the next batch.
#[derive(Default)]
pub struct Batches {
    queue: Mutex<Queue>,
}

impl Batches {
    /// Stores `upload` with the next batch.
    pub(super) async fn store(&self, storage: &Arc<Storage>, upload: Upload) -> OpResult<Stored> {
        let (answer, answered) = oneshot::channel();
        let start = {
            let mut q = lock(&self.queue);
            q.waiting.push(Waiting { upload, answer });
            !std::mem::replace(&mut q.draining, true)
        };
        if start {
            schedule(storage);
        }
        answered
            .await
            .map_err(|_| OpError::new(Status::EIO, "trunk upload batch failed"))?
    }
}

/// Queues the next batch job on the writer threads.
fn schedule(storage: &Arc<Storage>) {
    let s = storage.clone();
    if let Err(e) = storage.writers.spawn(move || drain(&s)) {
        let waiting = {
            let mut q = lock(&storage.trunk.batches.queue);
            q.draining = false;
            std::mem::take(&mut q.waiting)
        };
        for w in waiting {
            let _ = w.answer.send(Err(OpError::new(e.status, e.reason.clone())));
        }
    }
}

/// Batches one writer-thread job stores back to back while uploads keep
/// arriving. Going on in the same job spares a wake-up of another writer
/// thread per batch (batches under load hold a few uploads each); the cap
/// lets the other jobs on the writer threads have their turn in between.
const BATCHES_PER_JOB: usize = 16;

/// Batches (blocking) while uploads are waiting, then the next job if
/// some still are.
fn drain(storage: &Arc<Storage>) {
    for _ in 0..BATCHES_PER_JOB {
        store_next_batch(storage);
        let more = {
            let mut q = lock(&storage.trunk.batches.queue);
            q.draining = !q.waiting.is_empty();
            q.draining
        };
        if !more {
            return;
        }
    }
    schedule(storage);
}

/// Takes the waiting uploads (at most [`MAX_BATCH_UPLOADS`]) and stores
/// them as one batch, answering each (blocking).
fn store_next_batch(storage: &Arc<Storage>) {
    let batch: Vec<Waiting> = {
        let mut q = lock(&storage.trunk.batches.queue);
        let n = q.waiting.len().min(MAX_BATCH_UPLOADS);
        q.waiting.drain(..n).collect()
    };
    if batch.is_empty() {
        return;
    }
    let (uploads, answers): (Vec<Upload>, Vec<_>) =
        batch.into_iter().map(|w| (w.upload, w.answer)).unzip();
    // A panic drops the answers: those uploads get EIO.
    let stored = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        store_batch(storage, &uploads)
    }));
    if let Ok(results) = stored {
        for (answer, result) in answers.into_iter().zip(results) {
            let _ = answer.send(result);
        }
    }
}

/// Stores one upload as a batch of its own (blocking): a synced upload,
/// which must not hold a writer thread that others wait for.
pub(super) fn store_one(storage: &Storage, upload: Upload) -> OpResult<Stored> {
    store_batch(storage, std::slice::from_ref(&upload))
        .pop()
        .unwrap_or_else(|| Err(OpError::new(Status::EIO, "no result")))
}

/// Stores a batch (blocking); one result per upload, in order.
fn store_batch(storage: &Storage, uploads: &[Upload]) -> Vec<OpResult<Stored>> {
    let failed_all = |e: OpError| {
        uploads
            .iter()
            .map(|_| Err(OpError::new(e.status, e.reason.clone())))
            .collect()
    };
    let space = match storage.trunk.serving_space() {
        Ok(space) => space,
        Err(e) => return failed_all(e),
    };
    let mut wants = Vec::with_capacity(uploads.len());
    for u in uploads {
        match u32::try_from(u.body.len()) {
            Ok(size) => wants.push((u.index, size)),
            Err(_) => return failed_all(OpError::invalid("body too long")),
        }
    }
    let allocs = match space.alloc_batch(&wants) {
        Ok(allocs) => allocs,
        Err(e) => return failed_all(e.into()),
    };
    let mut results: Vec<OpResult<Stored>> = Vec::with_capacity(uploads.len());
    // Per allocated slot: the upload's place, the slot, and the file's
    // name and mtime once it is filled.
    let mut taken: Vec<(usize, TrunkLocation, Stored)> = Vec::new();
    // Slots found holding another file (EEXIST): confirmed as used, so
    // they stay out of the pool (`super::client::occupied`).
    let mut occupied: Vec<TrunkLocation> = Vec::new();
    // Staged uploads, written together below: (upload, slot, staged).
    let mut staged: Vec<(usize, TrunkLocation, StagedUpload)> = Vec::new();
    for (i, (u, alloc)) in uploads.iter().zip(allocs).enumerate() {
        results.push(Ok(None));
        let slot = match alloc {
            Ok(Alloc::Slot(slot)) => slot,
            Ok(Alloc::NeedTrunkFile) => continue,
            Err(e) => {
                results[i] = Err(e.into());
                continue;
            }
        };
        // A synced upload is written alone, as it comes.
        let done = match u.job.fsync {
            true => u.job.fill(slot, &u.body),
            false => match u.job.stage(slot, &u.body) {
                Ok(upload) => {
                    staged.push((i, slot, upload));
                    continue;
                }
                Err(e) => Err(e),
            },
        };
        settle_fill(&mut results, &mut taken, &mut occupied, (i, slot), done);
    }
    let (places, writes): (Vec<(usize, TrunkLocation, String, i64)>, Vec<_>) = staged
        .into_iter()
        .map(|(i, slot, u)| ((i, slot, u.remote, u.mtime), (u.writer, u.header)))
        .unzip();
    let written = super::slot::finish_staged(writes);
    let (mut writes_tried, mut writes_done) = (0, 0);
    for ((i, slot, remote, mtime), w) in places.into_iter().zip(written) {
        writes_tried += 1;
        writes_done += i64::from(w.is_ok());
        let done = w.map(|()| (remote, mtime));
        settle_fill(&mut results, &mut taken, &mut occupied, (i, slot), done);
    }
    if writes_tried > 0 {
        storage.bump(|st| {
            st.total_file_write_count += writes_tried;
            st.success_file_write_count += writes_done;
        });
    }
    // The role may have moved on since the allocations: settling then
    // fails as a confirm to the new trunk server would.
    let serving = || storage.trunk.serving_space().map(|_| ());
    let settled: Vec<(TrunkLocation, bool)> = taken
        .iter()
        .map(|(_, slot, done)| (*slot, done.is_some() || occupied.contains(slot)))
        .collect();
    let confirms = match serving() {
        Ok(()) => space.confirm_batch(&settled),
        Err(e) => settled
            .iter()
            .map(|_| Err(std::io::Error::other(e.reason.clone())))
            .collect(),
    };
    let mut logged: Vec<(usize, TrunkLocation, String, i64)> = Vec::new();
    for ((i, slot, done), confirmed) in taken.into_iter().zip(confirms) {
        let Some((remote, mtime)) = done else {
            // Not filled: no header of ours in it; its failed confirm gave
            // it back (or the role moved on, and the new server frees it).
            continue;
        };
        if let Err(e) = confirmed {
            tracing::error!(error = %e, remote, "trunk slot not confirmed; upload refused");
            clear(&uploads[i].job, &slot);
            if serving().is_ok() {
                if let Err(f) = space.confirm(&slot, false) {
                    tracing::warn!(error = %f, ?slot, "unused trunk slot not given back");
                }
            }
            results[i] = Err(e.into());
            continue;
        }
        logged.push((i, slot, remote, mtime));
    }
    let records: Vec<(i64, char, &str)> = logged
        .iter()
        .map(|(_, _, remote, mtime)| (*mtime, crate::binlog::op::CREATE, remote.as_str()))
        .collect();
    match storage.binlog.append_many(&records) {
        Ok(()) => {
            for (i, _, remote, mtime) in logged {
                results[i] = Ok(Some((remote, mtime)));
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "binlog write failed; trunk uploads refused");
            for (i, slot, _, _) in logged {
                clear(&uploads[i].job, &slot);
                if let Err(f) = serving().and_then(|()| Ok(space.free(&slot)?)) {
                    tracing::error!(error = %f.reason, ?slot, "trunk slot leaked; a scrub frees it");
                }
                results[i] = Err(OpError::new(
                    Status::EIO,
                    format!("binlog write failed: {e}"),
                ));
            }
        }
    }
    results
}

/// Notes how filling upload `i`'s slot went: a filled slot is taken with
/// its name; a failed one is taken empty (given back when settled), or
/// kept as occupied when it held another file (EEXIST).
fn settle_fill(
    results: &mut [OpResult<Stored>],
    taken: &mut Vec<(usize, TrunkLocation, Stored)>,
    occupied: &mut Vec<TrunkLocation>,
    (i, slot): (usize, TrunkLocation),
    done: OpResult<(String, i64)>,
) {
    match done {
        Ok(done) => taken.push((i, slot, Some(done))),
        Err(e) => {
            if e.status == Status::EEXIST {
                occupied.push(slot);
            }
            taken.push((i, slot, None));
            results[i] = Err(e);
        }
    }
}

fn clear(job: &SlotJob, slot: &TrunkLocation) {
    if let Err(e) = super::slot::clear_slot(&job.root, slot) {
        tracing::warn!(error = %e, ?slot, "cannot clear an unused trunk slot");
    }
}

//! A few long-lived threads that do the disk work of small uploads from one
//! queue. The runtime's blocking pool grows a thread per concurrent task
//! (hundreds at 256 connections) and puts one to sleep and wakes it for
//! every task: two context switches per upload, the largest share of a
//! small upload's CPU. These threads take the next job without sleeping
//! while the queue is not empty, so under load a wake-up serves many jobs.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, OnceLock};

use fdfs_proto::Status;

use crate::error::{OpError, OpResult};

type Job = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// Threads waiting on the condvar: a push notifies only when one waits.
    idle: usize,
    closed: bool,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
}

/// The writer threads, started on first use; they end when this is dropped.
pub struct Writers {
    threads: usize,
    shared: OnceLock<Arc<Shared>>,
}

impl Writers {
    pub fn new(threads: usize) -> Self {
        Writers {
            threads: threads.max(1),
            shared: OnceLock::new(),
        }
    }

    fn shared(&self) -> OpResult<&Arc<Shared>> {
        if let Some(s) = self.shared.get() {
            return Ok(s);
        }
        let shared = Arc::new(Shared::default());
        for i in 0..self.threads {
            let s = shared.clone();
            std::thread::Builder::new()
                .name(format!("fdfs-writer-{i}"))
                .spawn(move || work(&s))
                .map_err(|e| OpError::new(Status::EIO, format!("writer thread: {e}")))?;
        }
        // A racing first call may have started its own threads: they find
        // their queue closed when their Arc is the only one left.
        if let Err(unused) = self.shared.set(shared) {
            close(&unused);
        }
        Ok(self.shared.get().expect("set above"))
    }

    /// Runs `job` on a writer thread and waits for its result.
    pub async fn run<T, F>(&self, job: F) -> OpResult<T>
    where
        F: FnOnce() -> OpResult<T> + Send + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.spawn(move || {
            let _ = tx.send(job());
        })?;
        rx.await
            .map_err(|_| OpError::new(Status::EIO, "disk task failed"))?
    }

    /// Queues `job` for a writer thread without waiting for it.
    pub fn spawn(&self, job: impl FnOnce() + Send + 'static) -> OpResult<()> {
        let shared = self.shared()?;
        let mut q = fdfs_util::sync::lock(&shared.queue);
        q.jobs.push_back(Box::new(job));
        if q.idle > 0 {
            shared.ready.notify_one();
        }
        Ok(())
    }
}

impl Drop for Writers {
    fn drop(&mut self) {
        if let Some(s) = self.shared.get() {
            close(s);
        }
    }
}

fn close(shared: &Shared) {
    fdfs_util::sync::lock(&shared.queue).closed = true;
    shared.ready.notify_all();
}

fn work(shared: &Shared) {
    let mut q = fdfs_util::sync::lock(&shared.queue);
    loop {
        if let Some(job) = q.jobs.pop_front() {
            drop(q);
            // A panicking job drops its sender: the caller gets EIO, and
            // this thread goes on with the next job.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            q = fdfs_util::sync::lock(&shared.queue);
            continue;
        }
        if q.closed {
            return;
        }
        q.idle += 1;
        q = shared.ready.wait(q).unwrap_or_else(|e| e.into_inner());
        q.idle -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_and_answer_from_few_threads() {
        let w = Writers::new(2);
        let mut handles = Vec::new();
        let w = Arc::new(w);
        for i in 0..100u32 {
            let w = w.clone();
            handles.push(tokio::spawn(async move { w.run(move || Ok(i * 2)).await }));
        }
        for (i, h) in handles.into_iter().enumerate() {
            assert_eq!(h.await.unwrap().unwrap(), i as u32 * 2);
        }
        let err = w.run(|| -> OpResult<()> { panic!("job panics") }).await;
        assert_eq!(err.unwrap_err().status, Status::EIO);
        assert_eq!(w.run(|| Ok(7)).await.unwrap(), 7);
    }
}

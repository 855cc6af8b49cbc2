//! A fixed set of worker threads that run jobs in any order; each job's result comes back
//! through its own [`Ticket`], so the caller consumes results in the order it chooses.

use std::sync::{mpsc, Arc, Mutex};
use std::thread::Scope;

type Job<'scope> = Box<dyn FnOnce() + Send + 'scope>;

/// Workers living in a thread scope; they stop when the pool is dropped.
pub struct Pool<'scope> {
    jobs: mpsc::Sender<Job<'scope>>,
}

/// The future result of one job.
pub struct Ticket<T> {
    rx: mpsc::Receiver<T>,
    got: Option<T>,
}

impl<'scope> Pool<'scope> {
    pub fn start<'env>(scope: &'scope Scope<'scope, 'env>, threads: usize) -> Self {
        let (tx, rx) = mpsc::channel::<Job<'scope>>();
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..threads.max(1) {
            let rx = rx.clone();
            scope.spawn(move || loop {
                let job = match rx.lock().unwrap_or_else(|e| e.into_inner()).recv() {
                    Ok(job) => job,
                    Err(_) => return,
                };
                job();
            });
        }
        Pool { jobs: tx }
    }

    /// Queues `f`; its result is waited for with the ticket (a dropped ticket discards it).
    pub fn submit<T: Send + 'scope>(&self, f: impl FnOnce() -> T + Send + 'scope) -> Ticket<T> {
        let (tx, rx) = mpsc::sync_channel(1);
        let job: Job<'scope> = Box::new(move || {
            let _ = tx.send(f());
        });
        // The workers only stop once the pool is dropped, so the job is always taken.
        let _ = self.jobs.send(job);
        Ticket { rx, got: None }
    }
}

impl<T> Ticket<T> {
    /// True once the result is in.
    pub fn ready(&mut self) -> bool {
        if self.got.is_none() {
            self.got = self.rx.try_recv().ok();
        }
        self.got.is_some()
    }

    /// The result, waiting for it; `None` if the job never finished (its worker panicked).
    pub fn wait(mut self) -> Option<T> {
        self.got.take().or_else(|| self.rx.recv().ok())
    }
}

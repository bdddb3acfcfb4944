//! A small fork-join thread pool for the forward pass: one per session, low wake-up latency.
//!
//! A forward pass of one token is a few hundred short parallel steps (each matrix product, the
//! attention of a layer), each taking tens to hundreds of microseconds, separated by short
//! sequential steps on the calling thread. Waking sleeping threads for each step (rayon parks idle
//! workers) costs several microseconds per step and per thread, so here workers spin on a shared
//! generation counter for a while after each step (about [`SPIN_LIMIT`] checks, a few hundred
//! microseconds) before they sleep on a condition variable. The calling thread takes part in every
//! step, so `threads = 1` runs everything inline without any worker.
//!
//! Each thread starts a step with its own contiguous share of the task indices and runs them in
//! order; a thread whose share is done takes tasks from the back of the share with the most left
//! (work stealing), so a thread delayed by another process does not hold the others back. The
//! products number their tasks in memory order, so a thread reads one stream of weights and the
//! kernels' prefetches run on into its next task; tasks can then be small, which shortens the wait
//! at a step's end. Measured in 1.1B Q4_0 generation (`FERROLLM_PROFILE`): with one shared
//! counter (tasks dealt alternately) and 4 tasks per thread, the first thread to finish a product
//! waited 25.6 µs on average, of ~290 µs steps; with shares and 16 tasks per thread, 5–8 µs. The
//! contiguity alone did not change the products' time per byte measurably.

use std::any::Any;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

/// How many times an idle worker checks for new work before it sleeps.
const SPIN_LIMIT: u32 = 1 << 17;

type Job<'a> = dyn Fn(usize, usize) + Sync + 'a;

struct Shared {
    /// The current step's function (a `*const Job` erased to a thin pointer to a fat pointer).
    job: AtomicPtr<&'static Job<'static>>,
    /// Each thread's share of the current step's task indices, `next | end << 32`.
    shares: Box<[Share]>,
    /// With profiling on: when the first and the last thread finished the current step
    /// (nanoseconds of [`crate::profile::clock_ns`]).
    first_done: AtomicU64,
    last_done: AtomicU64,
    /// Incremented for every step; workers wait for it to change.
    generation: AtomicU64,
    /// Workers that have not finished the current step.
    running: AtomicUsize,
    shutdown: AtomicBool,
    sleeping: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
    panic: Mutex<Option<Box<dyn Any + Send>>>,
}

/// One thread's share of a step's tasks (own cache line: the owner updates it for every task).
#[repr(align(128))]
struct Share(AtomicU64);

fn share(next: usize, end: usize) -> u64 {
    next as u64 | (end as u64) << 32
}

fn unshare(v: u64) -> (usize, usize) {
    (v as u32 as usize, (v >> 32) as usize)
}

impl Shared {
    /// Runs tasks of the current step until none are left.
    fn work(&self, job: &Job<'_>, thread: usize) {
        while let Some(i) = self.take(thread) {
            job(i, thread);
        }
        if crate::profile::enabled() {
            let now = crate::profile::clock_ns();
            self.first_done.fetch_min(now, Relaxed);
            self.last_done.fetch_max(now, Relaxed);
        }
    }

    /// The next task for `thread`: the front of its own share, else the back of the share with
    /// the most tasks left. Shares only shrink during a step, so when the fullest is empty, all
    /// are.
    fn take(&self, thread: usize) -> Option<usize> {
        let own = &self.shares[thread].0;
        let mut cur = own.load(Ordering::Relaxed);
        loop {
            let (next, end) = unshare(cur);
            if next >= end {
                break;
            }
            match own.compare_exchange_weak(cur, share(next + 1, end), Relaxed, Relaxed) {
                Ok(_) => return Some(next),
                Err(v) => cur = v,
            }
        }
        loop {
            let (victim, cur) = self
                .shares
                .iter()
                .map(|s| s.0.load(Ordering::Relaxed))
                .enumerate()
                .max_by_key(|&(_, v)| {
                    let (next, end) = unshare(v);
                    end.saturating_sub(next)
                })?;
            let (next, end) = unshare(cur);
            if next >= end {
                return None;
            }
            let v = &self.shares[victim].0;
            if v.compare_exchange(cur, share(next, end - 1), Relaxed, Relaxed)
                .is_ok()
            {
                return Some(end - 1);
            }
        }
    }
}

/// A fork-join pool of `threads - 1` workers plus the calling thread.
pub struct Pool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    threads: usize,
}

impl Pool {
    /// A pool running steps on `threads` threads (the caller and `threads - 1` workers; at least 1).
    pub fn new(threads: usize) -> std::io::Result<Pool> {
        let threads = threads.max(1);
        let shared = Arc::new(Shared {
            job: AtomicPtr::new(std::ptr::null_mut()),
            shares: (0..threads).map(|_| Share(AtomicU64::new(0))).collect(),
            first_done: AtomicU64::new(0),
            last_done: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            running: AtomicUsize::new(0),
            shutdown: AtomicBool::new(false),
            sleeping: AtomicUsize::new(0),
            lock: Mutex::new(()),
            wake: Condvar::new(),
            panic: Mutex::new(None),
        });
        let mut workers = Vec::with_capacity(threads - 1);
        for i in 1..threads {
            let s = shared.clone();
            let handle = std::thread::Builder::new()
                .name(format!("ferrollm-{i}"))
                .spawn(move || worker(&s, i));
            match handle {
                Ok(h) => workers.push(h),
                Err(e) => {
                    let pool = Pool {
                        shared,
                        workers,
                        threads,
                    };
                    drop(pool);
                    return Err(e);
                }
            }
        }
        Ok(Pool {
            shared,
            workers,
            threads,
        })
    }

    /// Threads taking part in each step (including the caller).
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `f(i, thread)` for every `i` in `0..n_tasks`, spread over the pool's threads, and
    /// returns when all have finished. `thread` (below [`Pool::threads`]) identifies the thread
    /// running the task: no two tasks with the same `thread` run at the same time, so it can index
    /// per-thread scratch space. A panic in any task is re-raised here after every thread has
    /// stopped using `f`.
    pub fn run<F: Fn(usize, usize) + Sync>(&self, n_tasks: usize, f: F) {
        if n_tasks == 0 {
            return;
        }
        if self.workers.is_empty() || n_tasks == 1 {
            (0..n_tasks).for_each(|i| f(i, 0));
            return;
        }
        assert!(n_tasks <= u32::MAX as usize, "{n_tasks} tasks in one step");
        let s = &*self.shared;
        let job: &Job<'_> = &f;
        // SAFETY: the reference is only used by workers between the generation bump below and
        // their decrement of `running`, and this function does not return (nor unwind) before
        // `running` is back to zero, so `f` outlives every use.
        let job: &'static Job<'static> =
            unsafe { std::mem::transmute::<&Job<'_>, &'static Job<'static>>(job) };
        let slot = &job as *const &'static Job<'static> as *mut &'static Job<'static>;
        s.job.store(slot, Ordering::Relaxed);
        for (t, sh) in s.shares.iter().enumerate() {
            let part = |t: usize| t * n_tasks / self.threads;
            sh.0.store(share(part(t), part(t + 1)), Ordering::Relaxed);
        }
        s.first_done.store(u64::MAX, Relaxed);
        s.last_done.store(0, Relaxed);
        s.running.store(self.workers.len(), Ordering::Relaxed);
        s.generation.fetch_add(1, Ordering::Release);
        if s.sleeping.load(Ordering::SeqCst) > 0 {
            let _g = s.lock.lock().unwrap_or_else(|e| e.into_inner());
            s.wake.notify_all();
        }
        let mine = catch_unwind(AssertUnwindSafe(|| s.work(job, 0)));
        // Wait for the workers: spin briefly, then yield.
        let mut spins = 0u32;
        while s.running.load(Ordering::Acquire) != 0 {
            if spins < SPIN_LIMIT {
                spins += 1;
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        if crate::profile::enabled() {
            let (first, last) = (s.first_done.load(Relaxed), s.last_done.load(Relaxed));
            crate::profile::record_wait(last.saturating_sub(first));
        }
        s.job.store(std::ptr::null_mut(), Ordering::Relaxed);
        if let Err(p) = mine {
            resume_unwind(p);
        }
        let theirs = s.panic.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(p) = theirs {
            resume_unwind(p);
        }
    }
}

fn worker(s: &Shared, thread: usize) {
    let mut seen = 0u64;
    loop {
        // Wait for a new generation (or shutdown).
        let mut spins = 0u32;
        loop {
            if s.shutdown.load(Ordering::Acquire) {
                return;
            }
            if s.generation.load(Ordering::Acquire) != seen {
                break;
            }
            if spins < SPIN_LIMIT {
                spins += 1;
                std::hint::spin_loop();
                continue;
            }
            let g = s.lock.lock().unwrap_or_else(|e| e.into_inner());
            s.sleeping.fetch_add(1, Ordering::SeqCst);
            if s.generation.load(Ordering::SeqCst) == seen && !s.shutdown.load(Ordering::SeqCst) {
                drop(s.wake.wait(g).unwrap_or_else(|e| e.into_inner()));
            } else {
                drop(g);
            }
            s.sleeping.fetch_sub(1, Ordering::SeqCst);
            spins = 0;
        }
        seen = s.generation.load(Ordering::Acquire);
        let slot = s.job.load(Ordering::Relaxed);
        // SAFETY: a non-null slot is valid until `running` reaches zero (see `Pool::run`), and
        // this worker decrements `running` only after its last use.
        let job: &Job<'_> = unsafe { *slot };
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| s.work(job, thread))) {
            *s.panic.lock().unwrap_or_else(|e| e.into_inner()) = Some(p);
        }
        s.running.fetch_sub(1, Ordering::Release);
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        {
            let _g = self.shared.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.shared.wake.notify_all();
        }
        for h in self.workers.drain(..) {
            let _ = h.join();
        }
    }
}

/// A raw pointer to disjoint parts of a mutable slice shared by the tasks of one [`Pool::run`]
/// step: each task writes only the part it owns.
#[derive(Clone, Copy)]
pub(crate) struct SharedMut<T> {
    ptr: *mut T,
    len: usize,
}

// SAFETY: tasks only touch disjoint ranges (the caller's contract on `range`).
unsafe impl<T: Send> Send for SharedMut<T> {}
unsafe impl<T: Send> Sync for SharedMut<T> {}

impl<T> SharedMut<T> {
    pub(crate) fn new(s: &mut [T]) -> SharedMut<T> {
        SharedMut {
            ptr: s.as_mut_ptr(),
            len: s.len(),
        }
    }
    /// The elements `start..start + len`.
    ///
    /// # Safety
    /// No two live results may overlap, and the slice given to [`SharedMut::new`] must outlive them
    /// without being used otherwise.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn range(&self, start: usize, len: usize) -> &mut [T] {
        assert!(start + len <= self.len, "range out of bounds");
        std::slice::from_raw_parts_mut(self.ptr.add(start), len)
    }
    /// The elements `start..start + len`, to read.
    ///
    /// # Safety
    /// Nothing writes them while the result lives, and the slice given to [`SharedMut::new`]
    /// outlives it without being used otherwise.
    pub(crate) unsafe fn slice(&self, start: usize, len: usize) -> &[T] {
        assert!(start + len <= self.len, "range out of bounds");
        std::slice::from_raw_parts(self.ptr.add(start), len)
    }
    /// A pointer to element `start`, for writes to elements of `start..start + span` that the
    /// caller's task owns (they need not be contiguous).
    pub(crate) fn ptr_in(&self, start: usize, span: usize) -> *mut T {
        assert!(start + span <= self.len, "range out of bounds");
        self.ptr.wrapping_add(start)
    }
}

/// Bytes of the largest CPU cache (the last level) as Linux reports it for CPU 0; 0 where unknown.
pub fn last_level_cache_bytes() -> usize {
    static SIZE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *SIZE.get_or_init(|| {
        let Ok(dirs) = std::fs::read_dir("/sys/devices/system/cpu/cpu0/cache") else {
            return 0;
        };
        dirs.filter_map(|d| {
            let size = std::fs::read_to_string(d.ok()?.path().join("size")).ok()?;
            parse_cache_size(size.trim())
        })
        .max()
        .unwrap_or(0)
    })
}

/// `"307200K"`, `"32M"`, `"512"` → bytes.
fn parse_cache_size(s: &str) -> Option<usize> {
    let (digits, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => s.split_at(i),
        None => (s, ""),
    };
    let n: usize = digits.parse().ok()?;
    let mult = match unit {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_sizes_parse_as_sysfs_writes_them() {
        assert_eq!(parse_cache_size("307200K"), Some(307200 << 10));
        assert_eq!(parse_cache_size("32M"), Some(32 << 20));
        assert_eq!(parse_cache_size("512"), Some(512));
        assert_eq!(parse_cache_size("12Q"), None);
        assert_eq!(parse_cache_size(""), None);
    }

    #[test]
    fn every_task_runs_once() {
        for threads in [1, 2, 3] {
            let pool = Pool::new(threads).unwrap();
            for n in [0, 1, 2, 7, 100] {
                let hits: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
                pool.run(n, |i, th| {
                    assert!(th < threads);
                    hits[i].fetch_add(1, Ordering::Relaxed);
                });
                assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
            }
        }
    }

    /// Each thread runs its own share (`t × n / threads ..`) from the front, in order, and the
    /// others take over the share of a thread that is held up.
    #[test]
    fn threads_run_their_shares_in_order_and_take_over_held_up_ones() {
        for threads in [2, 3] {
            let pool = Pool::new(threads).unwrap();
            let n = 60;
            let ran: Vec<std::sync::Mutex<Vec<usize>>> =
                (0..threads).map(|_| Default::default()).collect();
            let done = AtomicUsize::new(0);
            let held = AtomicUsize::new(usize::MAX);
            pool.run(n, |i, th| {
                ran[th].lock().unwrap().push(i);
                // The first task of the last share waits (up to 10 s) until every other task has
                // run: only other threads taking over its share can get there.
                if i == (threads - 1) * n / threads {
                    let t = std::time::Instant::now();
                    while done.load(Ordering::SeqCst) < n - 1 && t.elapsed().as_secs() < 10 {
                        std::hint::spin_loop();
                    }
                    held.store(done.load(Ordering::SeqCst), Ordering::SeqCst);
                }
                done.fetch_add(1, Ordering::SeqCst);
            });
            assert_eq!(held.load(Ordering::SeqCst), n - 1, "{threads} threads");
            let mut all: Vec<usize> = ran.iter().flat_map(|r| r.lock().unwrap().clone()).collect();
            all.sort();
            assert_eq!(all, (0..n).collect::<Vec<_>>());
            for (t, r) in ran.iter().enumerate() {
                let r = r.lock().unwrap();
                let (start, end) = (t * n / threads, (t + 1) * n / threads);
                let own: Vec<usize> = r
                    .iter()
                    .copied()
                    .filter(|i| (start..end).contains(i))
                    .collect();
                // A thread's own tasks, where it ran any, are the front of its share in order.
                assert!(
                    own.iter().enumerate().all(|(k, &i)| i == start + k),
                    "thread {t} of {threads} ran its share as {own:?}"
                );
            }
        }
    }

    #[test]
    fn many_steps_and_sleeping_workers() {
        let pool = Pool::new(2).unwrap();
        let total = AtomicUsize::new(0);
        for step in 0..2000 {
            pool.run(4, |i, _| {
                total.fetch_add(i, Ordering::Relaxed);
            });
            if step == 1000 {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
        assert_eq!(total.load(Ordering::Relaxed), 2000 * 6);
    }

    #[test]
    fn panics_propagate_and_pool_survives() {
        let pool = Pool::new(2).unwrap();
        let r = catch_unwind(AssertUnwindSafe(|| {
            pool.run(8, |i, _| {
                if i == 5 {
                    panic!("task 5");
                }
            })
        }));
        assert!(r.is_err());
        let n = AtomicUsize::new(0);
        pool.run(8, |_, _| {
            n.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(n.load(Ordering::Relaxed), 8);
    }

    #[test]
    fn shared_mut_disjoint_writes() {
        let pool = Pool::new(2).unwrap();
        let mut v = vec![0usize; 100];
        let s = SharedMut::new(&mut v);
        pool.run(10, |i, _| {
            // SAFETY: task i owns elements 10i..10i+10.
            let part = unsafe { s.range(10 * i, 10) };
            part.iter_mut().for_each(|x| *x = i);
        });
        assert!(v.iter().enumerate().all(|(j, &x)| x == j / 10));
    }
}

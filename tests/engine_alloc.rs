//! The per-token loop allocates nothing: once a session has evaluated its prompt, feeding one
//! token and sampling the next (greedy and top-k) make no heap allocation, for every architecture
//! and for F16 and quantized weights. A counting global allocator counts every allocation of
//! every thread (the session's workers included) while the loop runs; this file holds one test so
//! that no other test allocates meanwhile.

mod common;

use ferrollm::format::{Container, GgmlType};
use ferrollm::model::{LoadParams, Model};
use ferrollm::quantizer::quantize;
use ferrollm::sampling::{Sampler, SamplerParams};
use ferrollm::session::{Logits, Session, SessionParams};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

/// Counts one allocation while counting is on.
fn count() {
    if COUNTING.load(Ordering::Relaxed) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made while `f` runs.
fn allocations_in(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    f();
    COUNTING.store(false, Ordering::SeqCst);
    ALLOCATIONS.load(Ordering::SeqCst) - before
}

#[test]
fn generating_a_token_allocates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for dir in common::hf_fixtures() {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let f16 = common::convert_to(&dir, tmp.path(), GgmlType::F16);
        let q4_0 = quantize(&f16, None, GgmlType::Q4_0, Container::Gguf, &mut |_| true)
            .unwrap()
            .path;
        for (ty, path) in [("f16", &f16), ("q4_0", &q4_0)] {
            let model = Arc::new(Model::load(path, &LoadParams::default()).unwrap());
            let n_vocab = model.spec().n_vocab as u32;
            for (sampling, top_k) in [("greedy", None), ("top-k", Some(40))] {
                let mut sampler = Sampler::new(match top_k {
                    None => SamplerParams {
                        temperature: 0.0,
                        ..Default::default()
                    },
                    Some(k) => SamplerParams {
                        top_k: k,
                        repetition_penalty: 1.1,
                        ..Default::default()
                    },
                })
                .unwrap();
                for threads in [1, 2] {
                    let mut s = Session::new(
                        model.clone(),
                        SessionParams {
                            threads,
                            context_length: 64,
                            ..Default::default()
                        },
                    )
                    .unwrap();
                    let prompt: Vec<u32> = (1..6).map(|i| i * 7 % n_vocab).collect();
                    let mut next = sampler.sample(s.eval(&prompt, Logits::Last).unwrap(), &prompt);
                    // Tokens until the context is full: the count covers every position, so a
                    // buffer that grows with the context is seen too.
                    let n = allocations_in(|| {
                        while s.tokens().len() < 64 {
                            s.eval(&[next], Logits::Last).unwrap();
                            next = sampler.sample(s.logits(), s.tokens());
                        }
                    });
                    if n > 0 {
                        failures.push(format!(
                            "{name} {ty} {sampling} {threads} threads: {n} allocations"
                        ));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

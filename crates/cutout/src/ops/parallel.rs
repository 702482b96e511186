//! Splitting our ops' work over tract's executor: the threads its matrix products use (a rayon
//! pool natively, wasm-bindgen-rayon's Web Workers in the threads build), or none.

#[cfg(feature = "multithread")]
use rayon::prelude::*;

/// Runs `parallel` on tract's thread pool when it has one; None when inference is single-threaded.
#[cfg(feature = "multithread")]
pub(super) fn in_pool<R: Send>(parallel: impl FnOnce() -> R + Send) -> Option<R> {
    use tract_linalg::multithread::{current_tract_executor, Executor};
    match current_tract_executor() {
        Executor::SingleThread => None,
        Executor::MultiThread(pool) => Some(pool.install(parallel)),
        Executor::RayonGlobal => Some(parallel()),
    }
}

/// `f` on each `chunk`-long piece of `xs`, results in order.
pub(super) fn map_chunks<A: Sync, R: Send>(
    xs: &[A],
    chunk: usize,
    f: impl Fn(&[A]) -> R + Sync + Send,
) -> Vec<R> {
    #[cfg(feature = "multithread")]
    if xs.len() > chunk {
        if let Some(results) = in_pool(|| xs.par_chunks(chunk).map(&f).collect()) {
            return results;
        }
    }
    xs.chunks(chunk).map(f).collect()
}

/// `f` on matching `chunk`-long pieces of `xs` and `ys` (same length).
pub(super) fn zip_chunks<A: Sync, B: Send>(
    xs: &[A],
    ys: &mut [B],
    chunk: usize,
    f: impl Fn(&[A], &mut [B]) + Sync + Send,
) {
    #[cfg(feature = "multithread")]
    if xs.len() > chunk {
        let parallel = || {
            xs.par_chunks(chunk)
                .zip(ys.par_chunks_mut(chunk))
                .for_each(|(x, y)| f(x, y))
        };
        if in_pool(parallel).is_some() {
            return;
        }
    }
    for (x, y) in xs.chunks(chunk).zip(ys.chunks_mut(chunk)) {
        f(x, y)
    }
}

/// `f(piece)` on each `chunk`-long piece of `xs`, in any order.
pub(super) fn for_each_chunk<A: Sync>(xs: &[A], chunk: usize, f: impl Fn(&[A]) + Sync + Send) {
    #[cfg(feature = "multithread")]
    if xs.len() > chunk && in_pool(|| xs.par_chunks(chunk).for_each(&f)).is_some() {
        return;
    }
    xs.chunks(chunk).for_each(f)
}

/// `f(index, x, y)` on the `index`-th `x_chunk`-long piece of `xs` and `y_chunk`-long piece
/// of `ys` (as many of each), in any order.
pub(super) fn zip_chunks_indexed<A: Sync, B: Send>(
    (xs, x_chunk): (&[A], usize),
    (ys, y_chunk): (&mut [B], usize),
    f: impl Fn(usize, &[A], &mut [B]) + Sync + Send,
) {
    #[cfg(feature = "multithread")]
    if xs.len() > x_chunk {
        let parallel = || {
            xs.par_chunks(x_chunk)
                .zip(ys.par_chunks_mut(y_chunk))
                .enumerate()
                .for_each(|(i, (x, y))| f(i, x, y))
        };
        if in_pool(parallel).is_some() {
            return;
        }
    }
    for (i, (x, y)) in xs.chunks(x_chunk).zip(ys.chunks_mut(y_chunk)).enumerate() {
        f(i, x, y)
    }
}

/// `f(index, piece)` on each `chunk`-long piece of `ys`, results in order.
pub(super) fn map_chunks_mut<B: Send, R: Send>(
    ys: &mut [B],
    chunk: usize,
    f: impl Fn(usize, &mut [B]) -> R + Sync + Send,
) -> Vec<R> {
    #[cfg(feature = "multithread")]
    if ys.len() > chunk {
        let parallel = || {
            ys.par_chunks_mut(chunk)
                .enumerate()
                .map(|(i, y)| f(i, y))
                .collect()
        };
        if let Some(results) = in_pool(parallel) {
            return results;
        }
    }
    ys.chunks_mut(chunk)
        .enumerate()
        .map(|(i, y)| f(i, y))
        .collect()
}

/// `background()` on one of tract's threads while `foreground()` runs on this one; one after
/// the other when inference is single-threaded.
pub(crate) fn overlap<A: Send, B>(
    background: impl FnOnce() -> A + Send,
    foreground: impl FnOnce() -> B,
) -> (A, B) {
    #[cfg(feature = "multithread")]
    {
        use std::sync::Mutex;
        use tract_linalg::multithread::{current_tract_executor, Executor};
        fn beside<'s, A: Send + 's, B>(
            scope: &rayon::Scope<'s>,
            slot: &'s Mutex<Option<A>>,
            background: impl FnOnce() -> A + Send + 's,
            foreground: impl FnOnce() -> B,
        ) -> B {
            scope.spawn(move |_| *slot.lock().unwrap() = Some(background()));
            foreground()
        }
        let slot = Mutex::new(None);
        let foreground = match current_tract_executor() {
            Executor::SingleThread => return (background(), foreground()),
            Executor::MultiThread(pool) => {
                pool.in_place_scope(|scope| beside(scope, &slot, background, foreground))
            }
            Executor::RayonGlobal => {
                rayon::in_place_scope(|scope| beside(scope, &slot, background, foreground))
            }
        };
        let background = slot.into_inner().unwrap().expect("the scope ran it");
        (background, foreground)
    }
    #[cfg(not(feature = "multithread"))]
    (background(), foreground())
}

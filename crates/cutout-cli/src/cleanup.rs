//! Files that must not outlive an interrupted run (a model download's `.part` file, an output's
//! temporary file): removed when the user presses Ctrl+C or the process is asked to stop.
//! (SIGKILL cannot be caught: a `.part` file left by one is replaced by the next download.)

use std::path::PathBuf;
use std::sync::Mutex;

static PENDING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// The exit code of a run stopped by a signal (128 + SIGINT, as shells report it).
const INTERRUPTED: i32 = 130;

/// While alive, `path` is removed if the run is interrupted.
pub struct Pending(PathBuf);

impl Drop for Pending {
    fn drop(&mut self) {
        let mut pending = PENDING.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = pending.iter().position(|p| *p == self.0) {
            pending.swap_remove(i);
        }
    }
}

pub fn track(path: PathBuf) -> Pending {
    PENDING
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(path.clone());
    Pending(path)
}

/// Installs the SIGINT / SIGTERM / SIGHUP handler (it runs on its own thread, not in signal
/// context, so it may touch the file system).
pub fn remove_pending_on_interrupt() {
    let installed = ctrlc::set_handler(|| {
        let pending = PENDING.lock().unwrap_or_else(|e| e.into_inner());
        for path in pending.iter() {
            let _ = std::fs::remove_file(path);
        }
        eprintln!("\ninterrupted: nothing partial was left behind");
        std::process::exit(INTERRUPTED);
    });
    if let Err(e) = installed {
        eprintln!(
            "note: cannot watch for Ctrl+C ({e}): an interrupted download may leave a .part file"
        );
    }
}

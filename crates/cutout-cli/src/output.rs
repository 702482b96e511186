//! Where results go and how they are written: never over an existing file unless forced, and never
//! as a half-written file.

use crate::error::CliError;
use std::collections::HashSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use cutout::OutputFormat;

use crate::inputs::Input;

pub enum Destination {
    /// One input, one named output file.
    File(PathBuf),
    /// Outputs named after their inputs inside a directory.
    Directory(PathBuf),
    /// No `-o`: a fresh random 8-hex-digit name in the current directory.
    RandomInCwd,
}

/// Picks names for a batch, keeping them unique within it.
pub struct Namer {
    destination: Destination,
    format: OutputFormat,
    used: HashSet<PathBuf>,
}

/// A random 8-hex-digit name. `RandomState` is seeded from the OS per process and varied per call.
fn random_hex8() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    format!("{:08x}", hasher.finish() as u32)
}

impl Namer {
    pub fn new(destination: Destination, format: OutputFormat) -> Namer {
        Namer {
            destination,
            format,
            used: HashSet::new(),
        }
    }

    pub fn name_for(&mut self, input: &Input) -> PathBuf {
        let ext = self.format.extension();
        let path = match &self.destination {
            Destination::File(path) => path.clone(),
            Destination::RandomInCwd => loop {
                let candidate = PathBuf::from(format!("{}.{ext}", random_hex8()));
                if !candidate.exists() && !self.used.contains(&candidate) {
                    break candidate;
                }
            },
            Destination::Directory(dir) => {
                let stem = input.stem();
                let mut candidate = dir.join(format!("{stem}.{ext}"));
                let mut n = 2;
                while self.used.contains(&candidate) {
                    candidate = dir.join(format!("{stem}-{n}.{ext}"));
                    n += 1;
                }
                candidate
            }
        };
        self.used.insert(path.clone());
        path
    }
}

/// Writes `bytes` to `path`. Without `force`, an existing file is an error and is left untouched;
/// with it, the new file replaces the old one atomically (temp file + rename).
pub fn write_output(path: &Path, bytes: &[u8], force: bool) -> Result<(), CliError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir)
            .map_err(|e| CliError::File(format!("cannot create {}: {e}", dir.display())))?;
    }
    if force {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let cannot_write =
            |e: std::io::Error| CliError::File(format!("cannot write {}: {e}", path.display()));
        // A temp file beside the target, renamed over it: the old file stays whole until then.
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(cannot_write)?;
        tmp.write_all(bytes).map_err(cannot_write)?;
        tmp.persist(path).map_err(|e| cannot_write(e.error))?;
        return Ok(());
    }
    let mut file = match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(CliError::File(format!(
                "{} already exists (use --force to overwrite it)",
                path.display()
            )))
        }
        Err(e) => {
            return Err(CliError::File(format!(
                "cannot write {}: {e}",
                path.display()
            )))
        }
    };
    if let Err(e) = file.write_all(bytes).and_then(|_| file.sync_all()) {
        drop(file);
        let _ = fs::remove_file(path);
        return Err(CliError::File(format!(
            "cannot write {}: {e}",
            path.display()
        )));
    }
    Ok(())
}

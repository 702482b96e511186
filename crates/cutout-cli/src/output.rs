//! Where results go and how they are written: never over an existing file unless forced, never
//! as a half-written file, never by replacing a device or a symbolic link; checked before the
//! work is done, so a batch into a finished folder costs no inference.

use crate::error::CliError;
use std::collections::HashSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use cutout::OutputFormat;

use crate::inputs::{Input, STDIO};

pub enum Destination {
    /// `-o -`: the encoded image on standard output.
    Stdout,
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
            Destination::Stdout => PathBuf::from(STDIO),
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

/// What is at an output path already.
enum Existing {
    Nothing,
    Regular,
    /// A device, pipe or socket (or anything under /dev): written into, never replaced.
    Special,
    Directory,
    /// A symbolic link whose target does not exist.
    DanglingLink(PathBuf),
}

/// Whether `path` names a device (/dev/stdout may lead to the regular file a shell redirected
/// output to: still a device path, written into, its name no guide to a format).
pub fn is_device_path(path: &Path) -> bool {
    path.starts_with("/dev")
}

fn existing(path: &Path) -> Existing {
    let Ok(own) = fs::symlink_metadata(path) else {
        return Existing::Nothing;
    };
    if is_device_path(path) {
        return Existing::Special;
    }
    let followed = if own.file_type().is_symlink() {
        match fs::metadata(path) {
            Ok(m) => m,
            Err(_) => return Existing::DanglingLink(fs::read_link(path).unwrap_or_default()),
        }
    } else {
        own
    };
    if followed.is_dir() {
        Existing::Directory
    } else if followed.is_file() {
        Existing::Regular
    } else {
        Existing::Special
    }
}

/// Whether `path` can take a result: refuses what [`write_output`] would refuse, before any
/// work is spent on the result.
pub fn check_target(path: &Path, force: bool) -> Result<(), CliError> {
    if path.as_os_str() == STDIO {
        return Ok(());
    }
    match existing(path) {
        Existing::Regular if !force => Err(CliError::File(format!(
            "{} already exists (use --force to overwrite it)",
            path.display()
        ))),
        Existing::Regular | Existing::Special => Ok(()),
        Existing::Directory => Err(CliError::File(format!(
            "{} is a folder: name a file, or end -o with / to write into it",
            path.display()
        ))),
        Existing::DanglingLink(target) => Err(CliError::File(format!(
            "{} is a symbolic link to {}, which does not exist: not writing through it",
            path.display(),
            target.display()
        ))),
        Existing::Nothing => check_folder(path),
    }
}

/// The folder a new file goes in must be a folder, or be creatable: the nearest existing
/// ancestor must be a folder, not a file.
fn check_folder(path: &Path) -> Result<(), CliError> {
    let Some(folder) = path.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Ok(());
    };
    for ancestor in folder.ancestors().filter(|a| !a.as_os_str().is_empty()) {
        match fs::metadata(ancestor) {
            Ok(m) if m.is_dir() => return Ok(()),
            Ok(_) => {
                return Err(CliError::File(format!(
                    "cannot write {}: {} is a file, not a folder",
                    path.display(),
                    ancestor.display()
                )))
            }
            Err(_) => continue,
        }
    }
    Ok(())
}

/// Writes `bytes` to `path` (`-`: standard output). Without `force`, an existing file is an
/// error and is left untouched; with it, the new file replaces the old one atomically (a temp
/// file renamed over it; through a symbolic link, the file it points to). Devices and pipes are
/// written into.
pub fn write_output(path: &Path, bytes: &[u8], force: bool) -> Result<(), CliError> {
    let cannot_write =
        |e: std::io::Error| CliError::File(format!("cannot write {}: {e}", path.display()));
    if path.as_os_str() == STDIO {
        let mut out = std::io::stdout().lock();
        return out
            .write_all(bytes)
            .and_then(|()| out.flush())
            .map_err(|e| CliError::File(format!("cannot write to standard output: {e}")));
    }
    check_target(path, force)?;
    match existing(path) {
        Existing::Special => {
            let mut device = fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(cannot_write)?;
            return device.write_all(bytes).map_err(cannot_write);
        }
        Existing::Regular => {
            // Replaced through any symbolic link: the link stays, the file it names changes.
            let target = fs::canonicalize(path).map_err(cannot_write)?;
            let dir = target.parent().unwrap_or(Path::new("."));
            // A temp file beside the target, renamed over it: the old file stays whole until then.
            let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(cannot_write)?;
            let _removed_if_interrupted = crate::cleanup::track(tmp.path().to_path_buf());
            tmp.write_all(bytes).map_err(cannot_write)?;
            tmp.persist(&target).map_err(|e| cannot_write(e.error))?;
            return Ok(());
        }
        _ => {}
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(|e| {
            CliError::File(format!("cannot create the folder {}: {e}", dir.display()))
        })?;
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
        Err(e) => return Err(cannot_write(e)),
    };
    let _removed_if_interrupted = crate::cleanup::track(path.to_path_buf());
    if let Err(e) = file.write_all(bytes).and_then(|_| file.sync_all()) {
        drop(file);
        let _ = fs::remove_file(path);
        return Err(cannot_write(e));
    }
    Ok(())
}

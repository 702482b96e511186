//! Expanding `-i` arguments (files, directories, globs, URLs) into a list of inputs.

use std::path::{Path, PathBuf};

use crate::net;

/// Extensions picked up when a directory is given.
const IMAGE_EXTENSIONS: [&str; 8] = ["jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff", "gif"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    File(PathBuf),
    Url(String),
    /// `-i -`: the image piped in.
    Stdin,
}

/// The argument that names standard input (`-i -`) or output (`-o -`).
pub const STDIO: &str = "-";

impl Input {
    /// How the input is named in status lines.
    pub fn label(&self) -> String {
        match self {
            Input::File(p) => p.display().to_string(),
            Input::Url(u) => u.clone(),
            Input::Stdin => "stdin".into(),
        }
    }

    /// File stem used to name outputs in a directory ("photo" for photo.jpg or .../photo.jpg?x=1).
    pub fn stem(&self) -> String {
        let stem = match self {
            Input::File(p) => p.file_stem().map(|s| s.to_string_lossy().into_owned()),
            Input::Url(u) => {
                let path = u.split(['?', '#']).next().unwrap_or(u);
                let last = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
                Path::new(last)
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
            }
            Input::Stdin => Some("stdin".into()),
        };
        stem.filter(|s| !s.is_empty() && !s.contains("://"))
            .unwrap_or_else(|| "image".into())
    }
}

/// An argument that could not be expanded, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadInput {
    pub arg: String,
    pub reason: String,
}

pub struct Expanded {
    pub inputs: Vec<Input>,
    pub bad: Vec<BadInput>,
    /// True when any argument was a directory or a glob (so outputs go to a directory).
    pub had_collection: bool,
}

fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

fn is_glob(arg: &str) -> bool {
    arg.contains(['*', '?', '['])
}

pub fn expand(args: &[String]) -> Expanded {
    let mut out = Expanded {
        inputs: vec![],
        bad: vec![],
        had_collection: false,
    };
    for arg in args {
        if arg == STDIO {
            if out.inputs.contains(&Input::Stdin) {
                out.reject(arg, "standard input can be read only once".into());
            } else {
                out.inputs.push(Input::Stdin);
            }
            continue;
        }
        if net::is_url(arg) {
            out.inputs.push(Input::Url(arg.clone()));
            continue;
        }
        if let Some(scheme) = net::unsupported_scheme(arg) {
            out.reject(
                arg,
                format!("'{scheme}' URLs are not supported: use http(s)"),
            );
            continue;
        }
        let path = Path::new(arg);
        if path.is_dir() {
            out.had_collection = true;
            match std::fs::read_dir(path) {
                Ok(entries) => {
                    let mut files: Vec<PathBuf> = entries
                        .filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| p.is_file() && has_image_extension(p))
                        .collect();
                    files.sort();
                    if files.is_empty() {
                        out.reject(arg, "the directory holds no image files".into());
                    }
                    out.inputs.extend(files.into_iter().map(Input::File));
                }
                Err(e) => out.reject(arg, format!("cannot list the directory: {e}")),
            }
        } else if path.exists() {
            out.inputs.push(Input::File(path.to_path_buf()));
        } else if is_glob(arg) {
            out.had_collection = true;
            match glob::glob(arg) {
                Ok(paths) => {
                    let mut files: Vec<PathBuf> = paths
                        .filter_map(Result::ok)
                        .filter(|p| p.is_file())
                        .collect();
                    files.sort();
                    if files.is_empty() {
                        out.reject(arg, "the pattern matches no files".into());
                    }
                    out.inputs.extend(files.into_iter().map(Input::File));
                }
                Err(e) => out.reject(arg, format!("invalid pattern: {e}")),
            }
        } else {
            out.reject(arg, "no such file or directory".into());
        }
    }
    out
}

impl Expanded {
    fn reject(&mut self, arg: &str, reason: String) {
        self.bad.push(BadInput {
            arg: arg.to_string(),
            reason,
        });
    }
}

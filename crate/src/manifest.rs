//! The model manifest (`models/manifest.json`): which models exist, where to get them, how to verify
//! them and how to feed them. Compiled into the engine so every shell sees the same list.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The manifest shipped with this build.
pub const BUILTIN_MANIFEST_JSON: &str = include_str!("../../models/manifest.json");

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub schema: u32,
    /// Id of the model used when the user names none.
    pub default: String,
    pub models: Vec<ModelEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModelEntry {
    pub id: String,
    pub name: String,
    pub licence: String,
    /// Where the product downloads it from; `None` when no single-file download exists.
    pub url: Option<String>,
    /// File name used in caches and when a mirror base URL replaces the official host.
    pub file: String,
    /// Byte size, when known.
    pub size: Option<u64>,
    /// Lower-case hex sha256, when known. Loading verifies it.
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub input: InputSpec,
    pub normalisation: Normalisation,
    pub output: OutputSpec,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InputSpec {
    pub name: String,
    pub width: u32,
    pub height: u32,
}

/// Per-channel (R, G, B) normalisation applied to pixel/255: `(x - mean) / std`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Normalisation {
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OutputSpec {
    /// Name of the mask output; `index` is the fallback when the graph names it differently.
    pub name: String,
    pub index: usize,
    /// True when the graph already ends in a sigmoid; otherwise the engine applies one.
    pub sigmoid_applied: bool,
    /// Stretch the mask so its minimum is 0 and its maximum 1 (BRIA's RMBG-1.4 post-processing).
    pub min_max_normalise: bool,
}

impl Manifest {
    pub fn builtin() -> Manifest {
        // The JSON is part of the source tree and checked by a unit test, so this cannot fail at run time.
        Manifest::parse(BUILTIN_MANIFEST_JSON).expect("models/manifest.json is valid")
    }

    pub fn parse(json: &str) -> Result<Manifest> {
        let manifest: Manifest = serde_json::from_str(json).map_err(|e| Error::Manifest {
            detail: format!("invalid JSON: {e}"),
        })?;
        manifest.validate()?;
        Ok(manifest)
    }

    fn validate(&self) -> Result<()> {
        let bad = |detail: String| Err(Error::Manifest { detail });
        if self.get(&self.default).is_none() {
            return bad(format!("default model '{}' is not listed", self.default));
        }
        for (i, entry) in self.models.iter().enumerate() {
            if self.models[..i].iter().any(|other| other.id == entry.id) {
                return bad(format!("model id '{}' is listed twice", entry.id));
            }
            if let Some(hash) = &entry.sha256 {
                if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return bad(format!(
                        "model '{}': sha256 must be 64 hex digits",
                        entry.id
                    ));
                }
            }
            if entry.input.width == 0 || entry.input.height == 0 {
                return bad(format!("model '{}': input size must be positive", entry.id));
            }
            if entry.normalisation.std.contains(&0.0) {
                return bad(format!("model '{}': std must not be zero", entry.id));
            }
        }
        Ok(())
    }

    pub fn get(&self, id: &str) -> Option<&ModelEntry> {
        self.models.iter().find(|m| m.id == id)
    }

    pub fn default_entry(&self) -> &ModelEntry {
        self.get(&self.default).expect("validated")
    }

    /// The entry whose pinned sha256 equals `sha256_hex`, used to recognise a local model file.
    pub fn find_by_sha256(&self, sha256_hex: &str) -> Option<&ModelEntry> {
        self.models
            .iter()
            .find(|m| m.sha256.as_deref() == Some(sha256_hex))
    }

    /// Ids joined for error messages ("rmbg-1.4, rmbg-1.4-fp16, ...").
    pub fn ids(&self) -> String {
        self.models
            .iter()
            .map(|m| m.id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl ModelEntry {
    /// The download URL, with the host replaced by `mirror_base` when a site owner or user hosts
    /// the files themselves (`<mirror_base>/<file>`).
    pub fn download_url(&self, mirror_base: Option<&str>) -> Option<String> {
        match mirror_base {
            Some(base) => Some(format!("{}/{}", base.trim_end_matches('/'), self.file)),
            None => self.url.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_manifest_is_valid_and_complete() {
        let m = Manifest::builtin();
        assert_eq!(m.default, "rmbg-1.4");
        for id in [
            "rmbg-1.4",
            "rmbg-1.4-fp16",
            "rmbg-1.4-fp32",
            "rmbg-2.0",
            "isnet",
            "isnet-fp16",
        ] {
            assert!(m.get(id).is_some(), "{id} missing");
        }
        let quantized = m.get("rmbg-1.4").unwrap();
        assert_eq!(
            quantized.sha256.as_deref(),
            Some("a6648479275dfd0ede0f3a8abc20aa5c437b394681b05e5af6d268250aaf40f3")
        );
        assert!(!m.get("rmbg-2.0").unwrap().output.sigmoid_applied);
        assert_eq!(
            m.find_by_sha256("7001d60734fdc112dd9c062635fb59cd401fb82a9d4213134bce4dbd655c803a")
                .map(|e| e.id.as_str()),
            Some("isnet")
        );
    }

    #[test]
    fn mirror_replaces_host_but_keeps_file_name() {
        let m = Manifest::builtin();
        let e = m.get("rmbg-1.4").unwrap();
        assert_eq!(
            e.download_url(Some("http://127.0.0.1:8080/models/"))
                .unwrap(),
            "http://127.0.0.1:8080/models/rmbg-1.4-quantized.onnx"
        );
        assert!(m.get("isnet").unwrap().download_url(None).is_none());
    }

    #[test]
    fn malformed_manifests_are_rejected_with_reasons() {
        let err = Manifest::parse("{").unwrap_err().to_string();
        assert!(err.contains("invalid JSON"), "{err}");
        let mut m = Manifest::builtin();
        m.default = "nope".into();
        let err = Manifest::parse(&serde_json::to_string(&m).unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("default model 'nope'"), "{err}");
        let mut m = Manifest::builtin();
        m.models[1].sha256 = Some("xyz".into());
        let err = Manifest::parse(&serde_json::to_string(&m).unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("64 hex digits"), "{err}");
    }
}

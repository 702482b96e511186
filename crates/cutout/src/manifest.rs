//! The model manifest (`models/manifest.json`): which models exist, where to get them, how to verify
//! them and how to feed them. Compiled into the engine so every shell sees the same list.

use crate::hash::is_sha256_hex;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The manifest shipped with this build.
pub const BUILTIN_MANIFEST_JSON: &str = include_str!("../../../models/manifest.json");

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
    /// The licence in one line, shown before the first download.
    pub licence: String,
    /// Where the licence's full text or terms are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub licence_url: Option<String>,
    /// Who hosts the file, in words (shown with the licence).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The official host refuses anonymous downloads (an account must accept the terms): only a
    /// mirror (`CUTOUT_MODEL_BASE_URL`, `modelBaseUrl`) can serve it.
    #[serde(default)]
    pub gated: bool,
    /// Where the product downloads it from as one file; `None` when it comes in parts or has no
    /// public download.
    pub url: Option<String>,
    /// Base URL of a model published in chunks (`<parts_base_url><part sha256>`, the layout of
    /// IMG.LY's CDN): downloaded in order, each part verified, assembled into `file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts_base_url: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<ModelPart>,
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

/// One chunk of a model published in parts; its file name on the host is its sha256.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModelPart {
    pub sha256: String,
    pub size: u64,
}

/// Where a model's bytes come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Download {
    /// One file at this URL.
    File(String),
    /// Parts fetched in order from these URLs and concatenated.
    Parts(Vec<(String, ModelPart)>),
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
            let hashes = entry
                .sha256
                .iter()
                .chain(entry.parts.iter().map(|p| &p.sha256));
            if hashes.into_iter().any(|hash| !is_sha256_hex(hash)) {
                return bad(format!(
                    "model '{}': sha256 must be 64 hex digits",
                    entry.id
                ));
            }
            if !entry.parts.is_empty() {
                if entry.url.is_some() || entry.parts_base_url.is_none() {
                    return bad(format!(
                        "model '{}': a model in parts has parts_base_url and no url",
                        entry.id
                    ));
                }
                let total: u64 = entry.parts.iter().map(|p| p.size).sum();
                if entry.size != Some(total) || entry.sha256.is_none() {
                    return bad(format!(
                        "model '{}': its parts add up to {total} bytes; size and sha256 must \
                         describe the assembled file",
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

    /// What to fetch: a mirror always serves the assembled file (`<mirror_base>/<file>`, what
    /// `cutout models fetch --dir` writes); the official host serves one file or the parts.
    pub fn download(&self, mirror_base: Option<&str>) -> Option<Download> {
        if let Some(url) = self.download_url(mirror_base) {
            return Some(Download::File(url));
        }
        let base = self.parts_base_url.as_deref()?;
        Some(Download::Parts(
            self.parts
                .iter()
                .map(|part| (format!("{base}{}", part.sha256), part.clone()))
                .collect(),
        ))
    }

    /// A download is verified against a hash the manifest pins; otherwise the first download's
    /// hash is recorded and enforced (trust on first download).
    pub fn is_pinned(&self) -> bool {
        self.sha256.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_manifest_is_valid_and_complete() {
        let m = Manifest::builtin();
        assert_eq!(m.default, "isnet-fp16");
        for id in [
            "ormbg",
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
        assert_eq!(
            m.get("isnet").unwrap().download(Some("https://my.host/m")),
            Some(Download::File("https://my.host/m/isnet_quint8.onnx".into()))
        );
    }

    /// With no override, every download goes to the real public host: the default's parts to
    /// IMG.LY's CDN under their sha256 names, ormbg to its public Hugging Face repository.
    #[test]
    fn without_a_mirror_the_open_models_come_from_their_public_hosts() {
        let m = Manifest::builtin();
        let default = m.default_entry();
        assert!(!default.gated && default.is_pinned());
        let Some(Download::Parts(parts)) = default.download(None) else {
            panic!("the default comes in parts");
        };
        assert_eq!(parts.len(), 22);
        assert_eq!(
            parts[0].0,
            "https://staticimgly.com/@imgly/background-removal-data/1.4.5/dist/\
             fe1b9f06af9d2147016884f4eb683d4dc540244a7453c3b742ae527725df2eec"
        );
        assert_eq!(
            m.get("ormbg").unwrap().download(None),
            Some(Download::File(
                "https://huggingface.co/schirrmacher/ormbg/resolve/main/ormbg.onnx".into()
            ))
        );
        assert!(m.get("rmbg-1.4").unwrap().gated);
        assert!(
            m.models.iter().all(ModelEntry::is_pinned),
            "every model is pinned"
        );
        for entry in &m.models {
            assert!(
                entry.licence_url.is_some(),
                "{} has no licence link",
                entry.id
            );
        }
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
        let mut m = Manifest::builtin();
        m.models[0].parts.pop();
        let err = Manifest::parse(&serde_json::to_string(&m).unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("parts add up to"), "{err}");
    }
}

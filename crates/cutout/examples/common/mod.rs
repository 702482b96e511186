//! What the examples share: a model file known to the manifest, loaded into a session.

use cutout::{Manifest, Model, Session};

/// A session on the model at `path`, recognised by its sha256 among the manifest's models.
pub fn session_for(path: &str) -> Result<Session, Box<dyn std::error::Error>> {
    let bytes = std::fs::read(path)?;
    let entry = Manifest::builtin()
        .find_by_sha256(&cutout::sha256_hex(&bytes))
        .cloned()
        .ok_or("not a model in the manifest")?;
    Ok(Session::new(Model::load(&bytes, &entry)?))
}

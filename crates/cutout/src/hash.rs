//! sha256, the one hash the engine and its shells use: models are pinned by it, downloads are
//! checked with it (streamed, part by part) and cached files are named by it.

pub use sha2::{Digest, Sha256};

/// Lower-case hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex_digest(Sha256::new_with_prefix(bytes))
}

/// Finishes a streaming sha256 (for downloads hashed as they arrive) as lower-case hex.
pub fn hex_digest(hasher: Sha256) -> String {
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `text` is a sha256 written in hex (64 digits, either case).
pub fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_and_whole_hashes_agree_with_the_known_empty_digest() {
        let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(sha256_hex(b""), empty);
        let mut streamed = Sha256::new();
        streamed.update(b"cut");
        streamed.update(b"out");
        assert_eq!(hex_digest(streamed), sha256_hex(b"cutout"));
        assert!(is_sha256_hex(empty) && is_sha256_hex(&empty.to_uppercase()));
        assert!(!is_sha256_hex(&empty[1..]) && !is_sha256_hex(&format!("{}g", &empty[1..])));
    }
}

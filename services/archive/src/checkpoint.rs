//! Signed checkpoints in the C2SP formats: the body is a `tlog-checkpoint` (origin line, tree
//! size, base64 root hash) and the signature follows the `signed-note` format with an Ed25519
//! key, so that standard transparency-log tooling can read and check them. Keys use the
//! signed-note key encoding (`PRIVATE+KEY+name+id+base64` and `name+id+base64`), which
//! `tracectl keygen` prints.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use signed_note::{Note, StandardSigner, StandardVerifier, VerifierList};
use tlog_tiles::checkpoint::Checkpoint;
use tlog_tiles::tlog::Hash;

/// Signature algorithm byte of Ed25519 keys in the signed-note key encoding.
const ALGORITHM_ED25519: u8 = 1;

/// A checkpoint key that could not be used, or a note that did not verify.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("invalid checkpoint signing key: {0}")]
    SigningKey(String),
    #[error("invalid checkpoint verifier key: {0}")]
    VerifierKey(String),
    #[error("checkpoint signature does not verify: {0}")]
    Signature(String),
    #[error("malformed checkpoint: {0}")]
    Malformed(String),
}

/// Signs checkpoints with one Ed25519 key.
pub struct CheckpointSigner {
    signer: StandardSigner,
    origin: String,
    verifier_key: String,
}

impl std::fmt::Debug for CheckpointSigner {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The signing key never reaches a log line.
        formatter
            .debug_struct("CheckpointSigner")
            .field("origin", &self.origin)
            .field("verifier_key", &self.verifier_key)
            .finish_non_exhaustive()
    }
}

impl CheckpointSigner {
    /// Parses a signing key; the key name is the checkpoint origin.
    pub fn new(signing_key: &str) -> Result<Self, CheckpointError> {
        let signing_key = signing_key.trim();
        let signer = StandardSigner::new(signing_key)
            .map_err(|error| CheckpointError::SigningKey(error.to_string()))?;
        let (origin, verifier_key) = verifier_key_of(signing_key)?;
        Ok(Self {
            signer,
            origin,
            verifier_key,
        })
    }

    /// Returns the checkpoint origin line, which is also the key name.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Returns the verifier key that checks this signer's notes.
    pub fn verifier_key(&self) -> &str {
        &self.verifier_key
    }

    /// Signs a checkpoint of `size` entries with root `root` and returns the note text.
    pub fn sign(&self, size: u64, root: Hash) -> Result<String, CheckpointError> {
        let body = Checkpoint::new(&self.origin, size, root, "")
            .map_err(|error| CheckpointError::Malformed(error.to_string()))?;
        let mut note = Note::new(&body.to_bytes(), &[])
            .map_err(|error| CheckpointError::Malformed(error.to_string()))?;
        note.add_sigs(&[&self.signer])
            .map_err(|error| CheckpointError::Signature(error.to_string()))?;
        String::from_utf8(note.to_bytes())
            .map_err(|error| CheckpointError::Malformed(error.to_string()))
    }
}

/// Derives `(name, verifier key)` from a signing key in the signed-note encoding.
fn verifier_key_of(signing_key: &str) -> Result<(String, String), CheckpointError> {
    let invalid = |reason: &str| CheckpointError::SigningKey(reason.to_owned());
    let parts: Vec<&str> = signing_key.splitn(5, '+').collect();
    let [_, _, name, _, key] = parts.as_slice() else {
        return Err(invalid("expected PRIVATE+KEY+name+id+key"));
    };
    let bytes = BASE64
        .decode(key)
        .map_err(|_| invalid("the key is not base64"))?;
    let (algorithm, secret) = bytes
        .split_first()
        .ok_or_else(|| invalid("the key is empty"))?;
    if *algorithm != ALGORITHM_ED25519 {
        return Err(invalid("only Ed25519 keys are supported"));
    }
    let secret: [u8; 32] = secret
        .try_into()
        .map_err(|_| invalid("an Ed25519 key is 32 bytes"))?;
    let verifying = ed25519_dalek::SigningKey::from_bytes(&secret).verifying_key();
    Ok((
        (*name).to_owned(),
        signed_note::new_ed25519_verifier_key(name, &verifying),
    ))
}

/// Generates a new key pair named `name`; returns `(signing key, verifier key)`.
pub fn generate_key(name: &str) -> Result<(String, String), CheckpointError> {
    if !signed_note::is_key_name_valid(name) {
        return Err(CheckpointError::SigningKey(format!(
            "key name {name:?} must be non-empty without spaces or '+'"
        )));
    }
    Ok(signed_note::generate_key(&mut rand_core::OsRng, name))
}

/// Checks a signed checkpoint note against a verifier key and returns its size and root.
pub fn verify_note(note_text: &str, verifier_key: &str) -> Result<(u64, Hash), CheckpointError> {
    let verifier = StandardVerifier::new(verifier_key.trim())
        .map_err(|error| CheckpointError::VerifierKey(error.to_string()))?;
    let note = Note::from_bytes(note_text.as_bytes())
        .map_err(|error| CheckpointError::Malformed(error.to_string()))?;
    note.verify(&VerifierList::new(vec![Box::new(verifier)]))
        .map_err(|error| CheckpointError::Signature(error.to_string()))?;
    let body = Checkpoint::from_bytes(note.text())
        .map_err(|error| CheckpointError::Malformed(error.to_string()))?;
    Ok((body.size(), *body.hash()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_checkpoint_verifies_with_its_key() {
        let (signing, verifying) = generate_key("trace.example/archive").unwrap();
        let signer = CheckpointSigner::new(&signing).unwrap();
        assert_eq!(signer.verifier_key(), verifying);
        let root = Hash([7; 32]);
        let note = signer.sign(42, root).unwrap();
        assert!(note.starts_with("trace.example/archive\n42\n"), "{note}");
        assert_eq!(verify_note(&note, &verifying).unwrap(), (42, root));
    }

    #[test]
    fn altered_checkpoint_fails_verification() {
        let (signing, verifying) = generate_key("trace.example/archive").unwrap();
        let note = CheckpointSigner::new(&signing)
            .unwrap()
            .sign(42, Hash([7; 32]))
            .unwrap();
        let altered = note.replacen("\n42\n", "\n43\n", 1);
        assert!(verify_note(&altered, &verifying).is_err());
    }

    #[test]
    fn checkpoint_from_another_key_fails_verification() {
        let (signing, _) = generate_key("trace.example/archive").unwrap();
        let (_, other_verifier) = generate_key("trace.example/archive").unwrap();
        let note = CheckpointSigner::new(&signing)
            .unwrap()
            .sign(1, Hash([1; 32]))
            .unwrap();
        assert!(verify_note(&note, &other_verifier).is_err());
    }

    #[test]
    fn debug_output_hides_the_signing_key() {
        let (signing, _) = generate_key("trace.example/archive").unwrap();
        let signer = CheckpointSigner::new(&signing).unwrap();
        let shown = format!("{signer:?}");
        assert!(!shown.contains("PRIVATE"), "{shown}");
    }
}

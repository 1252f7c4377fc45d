//! Resume tokens: the proof that a lease re-registered after a daemon restart is the asker's own.
//!
//! A restarted daemon restores which process held which slot from its lease file ([`crate::lease_file`]); the
//! token proves that the asker is that holder, and it is derived, not stored: `HMAC-SHA256(key, "shmbus resume v1" ‖ topic ‖ generation ‖ role ‖ slot ‖ uid)`, cut to
//! 128 bits. The daemon hands the token out with the lease; the client keeps it in its memory only (never in shared
//! memory, where every holder of the readers descriptor could read it) and sends it back in `Resume`. The daemon
//! recomputes the MAC and compares in constant time, so it verifies a token without a table, and a token is good
//! for one slot of one generation of one topic and one uid only: knowing the slot and the generation (which `stats`
//! shows) gives an attacker nothing, and a leaked token is useless to another user.
//!
//! The 256-bit key comes from /dev/urandom and lives in `/dev/shm/.<prefix>.key` (mode 0600, owned by the daemon's
//! user), next to the objects it vouches for and with the same lifetime: it survives a daemon restart, and
//! `--cleanup-on-exit` removes it with the topics. A key file that is not a plain 0600 file of the daemon's user
//! with one link and exactly 32 bytes is refused (someone planted it) and replaced; if it cannot be replaced the
//! daemon runs on a key in memory only, and leases from before a restart then cannot be resumed (their handles get
//! `Closed`), which is safe.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use shmbus_proto::msg::ResumeToken;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

const KEY_BYTES: usize = 32;
const DOMAIN: &[u8] = b"shmbus resume v1";

/// The daemon's resume-token key.
pub struct ResumeKey([u8; KEY_BYTES]);

impl std::fmt::Debug for ResumeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResumeKey(..)")
    }
}

/// What a token is bound to.
#[derive(Clone, Copy, Debug)]
pub struct TokenFor<'a> {
    /// Topic name.
    pub topic: &'a str,
    /// Topic generation.
    pub generation: u64,
    /// Publisher (or subscriber) slot.
    pub publisher: bool,
    /// The slot.
    pub slot: u32,
    /// The lease holder's uid.
    pub uid: u32,
}

/// The key file of `prefix`: `/dev/shm/.<prefix>.key` (the leading dot keeps it out of the prefix's object names).
pub fn key_path(prefix: &str) -> PathBuf {
    Path::new("/dev/shm").join(format!(".{prefix}.key"))
}

fn random_key() -> std::io::Result<[u8; KEY_BYTES]> {
    let mut k = [0u8; KEY_BYTES];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut k)?;
    Ok(k)
}

/// Reads the key at `path` if it is a plain 0600 file of this user with one link and the right size.
fn read_key(path: &Path) -> std::io::Result<Option<[u8; KEY_BYTES]>> {
    let Some(mut f) = crate::private_file::open_own(path, false)? else { return Ok(None) };
    let len = f.metadata()?.len();
    if len != KEY_BYTES as u64 {
        return Err(std::io::Error::other(format!("{len} bytes, not {KEY_BYTES}")));
    }
    let mut k = [0u8; KEY_BYTES];
    f.read_exact(&mut k)?;
    Ok(Some(k))
}

fn create_key(path: &Path) -> std::io::Result<[u8; KEY_BYTES]> {
    let k = random_key()?;
    crate::private_file::create_own(path)?.write_all(&k)?;
    Ok(k)
}

impl ResumeKey {
    /// A fresh key kept in memory only (tests; a daemon whose key file cannot be used).
    pub fn ephemeral() -> ResumeKey {
        ResumeKey(random_key().expect("reading /dev/urandom"))
    }

    /// The key of `prefix`, from its key file or a new one (see the module docs). Call it with the prefix lock
    /// held, so no other daemon of the prefix writes the file meanwhile.
    pub fn load_or_create(prefix: &str) -> ResumeKey {
        let path = key_path(prefix);
        match read_key(&path) {
            Ok(Some(k)) => return ResumeKey(k),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "refusing the resume key file; replacing it (leases from before this start cannot be resumed)");
                if let Err(e) = std::fs::remove_file(&path) {
                    tracing::warn!(path = %path.display(), error = %e, "cannot remove the refused key file");
                }
            }
        }
        match create_key(&path) {
            Ok(k) => ResumeKey(k),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot write the resume key file; using a key in memory (leases cannot be resumed after a restart)");
                ResumeKey::ephemeral()
            }
        }
    }

    fn mac(&self, t: TokenFor<'_>) -> Hmac<Sha256> {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes any key length");
        m.update(DOMAIN);
        m.update(&(t.topic.len() as u64).to_le_bytes());
        m.update(t.topic.as_bytes());
        m.update(&t.generation.to_le_bytes());
        m.update(&[u8::from(t.publisher)]);
        m.update(&t.slot.to_le_bytes());
        m.update(&t.uid.to_le_bytes());
        m
    }

    /// The token of a lease.
    pub fn token(&self, t: TokenFor<'_>) -> ResumeToken {
        let full = self.mac(t).finalize().into_bytes();
        let mut out = [0u8; 16];
        out.copy_from_slice(&full[..16]);
        ResumeToken(out)
    }

    /// Whether `token` is the token of `t` (constant-time comparison).
    pub fn verify(&self, t: TokenFor<'_>, token: &ResumeToken) -> bool {
        self.mac(t).verify_truncated_left(&token.0).is_ok()
    }
}

/// Removes the key file of `prefix` (`--cleanup-on-exit`).
pub fn remove(prefix: &str) {
    let _ = std::fs::remove_file(key_path(prefix));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(uid: u32, slot: u32) -> TokenFor<'static> {
        TokenFor { topic: "orders", generation: 7, publisher: false, slot, uid }
    }

    #[test]
    fn tokens_verify_only_for_what_they_were_made_for() {
        let k = ResumeKey::ephemeral();
        let tok = k.token(t(0, 1));
        assert!(k.verify(t(0, 1), &tok));
        assert!(!k.verify(t(65534, 1), &tok), "another uid");
        assert!(!k.verify(t(0, 2), &tok), "another slot");
        assert!(!k.verify(TokenFor { publisher: true, ..t(0, 1) }, &tok), "another role");
        assert!(!k.verify(TokenFor { generation: 8, ..t(0, 1) }, &tok), "another generation");
        assert!(!k.verify(t(0, 1), &ResumeToken::default()), "a zero token");
        assert!(!ResumeKey::ephemeral().verify(t(0, 1), &tok), "another key");
    }
}

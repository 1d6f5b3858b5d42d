//! Stream keys set through the API (`/api/v1/auth/keys`), beside those in
//! `auth.keys`: kept in `state_dir/stream-keys.json` so they survive a
//! restart, written by rename so a crash never leaves half a file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;

/// Keys by stream path.
pub struct KeyStore {
    file: PathBuf,
    keys: Mutex<BTreeMap<String, String>>,
}

/// Largest keys file read.
const MAX_FILE: u64 = 16 << 20;

impl KeyStore {
    /// Reads the file in `state_dir` if there is one (a bad file is logged
    /// and starts empty: the keys in `auth.keys` still work).
    pub fn open(state_dir: &Path) -> KeyStore {
        let file = state_dir.join("stream-keys.json");
        let keys = match crate::config::read_named_file(&file, MAX_FILE) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::error!(file = %file.display(), "stream keys unreadable, none loaded: {e}");
                BTreeMap::new()
            }),
            Err(_) => BTreeMap::new(),
        };
        KeyStore {
            file,
            keys: Mutex::new(keys),
        }
    }

    pub fn get(&self, path: &str) -> Option<String> {
        self.keys.lock().get(path).cloned()
    }

    /// The paths that have a key.
    pub fn paths(&self) -> Vec<String> {
        self.keys.lock().keys().cloned().collect()
    }

    /// Sets (`Some`) or removes (`None`) the key of `path` and saves the
    /// file; `Ok(false)`: there was nothing to remove.
    pub fn set(&self, path: &str, key: Option<String>) -> Result<bool, String> {
        let mut keys = self.keys.lock();
        let mut next = keys.clone();
        let changed = match key {
            Some(k) => {
                next.insert(path.to_owned(), k);
                true
            }
            None => next.remove(path).is_some(),
        };
        if changed {
            self.save(&next)?;
            *keys = next;
        }
        Ok(changed)
    }

    fn save(&self, keys: &BTreeMap<String, String>) -> Result<(), String> {
        use std::io::Write;
        let dir = self.file.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let tmp = self.file.with_extension("json.tmp");
        let text = serde_json::to_vec_pretty(keys).map_err(|e| e.to_string())?;
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode_private()
                .open(&tmp)?;
            f.write_all(&text)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.file)
        };
        write().map_err(|e| format!("{}: {e}", self.file.display()))
    }
}

/// Secrets on disk: readable by the server's user only.
trait PrivateMode {
    fn mode_private(&mut self) -> &mut Self;
}

impl PrivateMode for std::fs::OpenOptions {
    fn mode_private(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.mode(0o600)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_persist() {
        let dir = tempfile::tempdir().unwrap();
        let s = KeyStore::open(dir.path());
        assert_eq!(s.get("live/x"), None);
        assert!(s.set("live/x", Some("k1".into())).unwrap());
        assert!(!s.set("live/y", None).unwrap());
        let again = KeyStore::open(dir.path());
        assert_eq!(again.get("live/x").as_deref(), Some("k1"));
        assert_eq!(again.paths(), vec!["live/x".to_owned()]);
        assert!(again.set("live/x", None).unwrap());
        assert_eq!(KeyStore::open(dir.path()).get("live/x"), None);
    }
}

//! The pulls and pushes added through the API survive a restart: they are
//! kept in `state_dir/relay/jobs.json`, written whole to a temporary file
//! and renamed over the old one (a crash leaves one or the other).

use std::sync::Mutex;

use rill_abi::sdk::{ConnId, Error, Result};
use rill_abi::*;
use serde::{Deserialize, Serialize};

use crate::jobs::{Kind, Origin};
use crate::source::Url;
use crate::{lock, Pending, Relay};

const FILE: &str = "relay/jobs.json";
const TMP: &str = "relay/jobs.json.tmp";
/// Larger files are not read (the caps allow far fewer jobs).
const MAX_FILE: u64 = 4 << 20;

#[derive(Default)]
pub struct Store {
    /// A write is in flight; `dirty`: another is due after it.
    state: Mutex<(bool, bool)>,
}

pub enum Step {
    Read,
    Written,
    Renamed,
}

#[derive(Serialize, Deserialize)]
struct Saved {
    kind: Kind,
    url: String,
    stream: String,
}

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Kind, D::Error> {
        match String::deserialize(d)?.as_str() {
            "pull" => Ok(Kind::Pull),
            "push" => Ok(Kind::Push),
            k => Err(serde::de::Error::custom(format!("unknown kind {k}"))),
        }
    }
}

impl Relay {
    /// Reads the saved jobs (at create; they start when the answer comes).
    pub(crate) fn load(&self) {
        let Ok(file) = self.host.file_open(ConnId::INSTANCE, FILE, RILL_FILE_READ) else {
            return;
        };
        let t = self.token(Pending::Store(Step::Read));
        if self.host.file_read(file, 0, MAX_FILE, t).is_err() {
            lock(&self.pending).remove(&t);
        }
        let _ = self.host.file_close(file, 0);
    }

    /// Writes the API's jobs (now, or after the write in flight).
    pub(crate) fn save(&self) {
        {
            let mut st = lock(&self.store.state);
            if st.0 {
                st.1 = true;
                return;
            }
            st.0 = true;
            st.1 = false;
        }
        let saved: Vec<Saved> = lock(&self.jobs)
            .by_id
            .values()
            .filter(|j| j.origin == Origin::Api && !j.stopping)
            .filter_map(|j| {
                Some(Saved {
                    kind: j.kind,
                    // With its secrets: the job must work again.
                    url: j.url.as_ref()?.full(),
                    stream: j.stream.clone(),
                })
            })
            .collect();
        let text = serde_json::to_vec_pretty(&saved).unwrap_or_default();
        let flags = RILL_FILE_WRITE | RILL_FILE_CREATE | RILL_FILE_TRUNCATE;
        let r = self
            .host
            .file_open(ConnId::INSTANCE, TMP, flags)
            .and_then(|f| {
                self.host.file_write(f, None, &text)?;
                let t = self.token(Pending::Store(Step::Written));
                self.host.file_close(f, t).inspect_err(|_| {
                    lock(&self.pending).remove(&t);
                })
            });
        if let Err(e) = r {
            self.store_failed(&e.to_string());
        }
    }

    fn store_failed(&self, why: &str) {
        rill_log!(self.host, Error, "relay: saving {FILE}: {why}");
        *lock(&self.store.state) = (false, false);
    }

    pub(crate) fn store_io(&self, step: Step, result: Result<i64>, data: &[u8]) {
        match step {
            Step::Read => match result {
                Ok(_) => self.restore(data),
                Err(Error::NOT_FOUND) => {}
                Err(e) => rill_log!(self.host, Warn, "relay: reading {FILE}: {e}"),
            },
            Step::Written => match result {
                Ok(_) => {
                    let t = self.token(Pending::Store(Step::Renamed));
                    if let Err(e) =
                        self.host
                            .fs_op(ConnId::INSTANCE, RILL_FS_RENAME, TMP, FILE, 0, t)
                    {
                        lock(&self.pending).remove(&t);
                        self.store_failed(&e.to_string());
                    }
                }
                Err(e) => self.store_failed(&e.to_string()),
            },
            Step::Renamed => {
                if let Err(e) = result {
                    return self.store_failed(&e.to_string());
                }
                let again = {
                    let mut st = lock(&self.store.state);
                    let again = st.1;
                    *st = (false, false);
                    again
                };
                if again {
                    self.save();
                }
            }
        }
    }

    fn restore(&self, data: &[u8]) {
        let saved: Vec<Saved> = match serde_json::from_slice(data) {
            Ok(s) => s,
            Err(e) => {
                rill_log!(self.host, Error, "relay: {FILE} is not valid: {e}");
                return;
            }
        };
        for s in saved {
            let r = Url::parse(&s.url).and_then(|url| {
                crate::config::check_stream(&s.stream)?;
                self.add_job(
                    s.kind,
                    Origin::Api,
                    Some(url),
                    &s.stream,
                    Default::default(),
                )
            });
            if let Err(e) = r {
                rill_log!(
                    self.host,
                    Warn,
                    "relay: saved {:?} of {}: {e}",
                    s.kind,
                    s.stream
                );
            }
        }
    }
}

//! What the browser tests share: where Chromium and the npm packages are,
//! and why the browser stack cannot run here, if it cannot.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::workspace_dir;

/// Debian's Chromium, or `$CHROMIUM`.
pub fn chromium() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

/// tests/browser: the pages, the drivers, node_modules.
pub fn dir() -> PathBuf {
    workspace_dir().join("tests/browser")
}

fn runs(cmd: &str, arg: &str) -> bool {
    Command::new(cmd)
        .arg(arg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Why the browser stack (Chromium, node, the npm files `deps` under
/// tests/browser/node_modules) cannot run here, if it cannot.
pub fn missing(deps: &[&str]) -> Option<String> {
    if !Path::new(&chromium()).exists() {
        return Some(format!("{} not installed", chromium()));
    }
    if !runs("node", "--version") {
        return Some("node not installed".into());
    }
    for dep in deps {
        if !dir().join("node_modules").join(dep).exists() {
            return Some(format!(
                "tests/browser/node_modules/{dep} missing (npm ci in tests/browser)"
            ));
        }
    }
    None
}

//! What tests in several crates share, with no dependencies of its own.

pub mod fuzz;

/// The environment variable that turns a missing tool into a failure.
/// `scripts/test` (and so CI) sets it: there, every tool is installed by
/// `scripts/install-deps`, and a test that cannot run is a broken test.
pub const REQUIRE_TOOLS: &str = "RILL_REQUIRE_TOOLS";

/// Whether a test that needs `tool` can run. When it is missing (`why`
/// says how), the test is skipped with a `SKIPPED` line, unless
/// `RILL_REQUIRE_TOOLS=1`, where it fails. Use as
/// `if !require_tool("test_name", "cc", have_cc().then_some(()).ok_or(..)) { return; }`.
pub fn require_tool(test: &str, tool: &str, missing: Option<String>) -> bool {
    let Some(why) = missing else {
        return true;
    };
    if std::env::var(REQUIRE_TOOLS).is_ok_and(|v| v == "1") {
        panic!("{test}: {tool} is missing ({why}) and {REQUIRE_TOOLS}=1: run scripts/install-deps");
    }
    eprintln!("SKIPPED {test}: {tool} is missing ({why}); run scripts/install-deps");
    false
}

/// Whether `cmd args` runs and exits 0.
pub fn runs(cmd: &str, args: &[&str]) -> bool {
    std::process::Command::new(cmd)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn present_tools_run() {
        assert!(require_tool("t", "x", None));
        assert!(runs("true", &[]));
        assert!(!runs("/nonexistent/tool", &[]));
    }
}

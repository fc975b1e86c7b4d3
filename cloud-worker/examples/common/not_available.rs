//! How a GPU example says the GPU part it needs is missing: the reason on standard error and,
//! with `--out`, as the result file, then exit status 2 (the GPU bundle's NOT AVAILABLE).

use std::path::Path;
use std::process::ExitCode;

/// Reports `reason` for `tool` and gives the exit status to return.
pub(crate) fn report(tool: &str, reason: &str, out: Option<&Path>) -> ExitCode {
    eprintln!("{tool}: not available: {reason}");
    if let Some(out) = out {
        let result = serde_json::json!({"status": "not available", "reason": reason});
        if let Err(e) = std::fs::write(out, result.to_string() + "\n") {
            eprintln!("{tool}: writing {}: {e}", out.display());
            return ExitCode::from(1);
        }
    }
    ExitCode::from(2)
}

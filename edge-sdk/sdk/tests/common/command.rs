//! Starting the crate's binaries from tests, also when the tests themselves run under an
//! emulator: a cross-built test (`cargo test --target aarch64-unknown-linux-gnu`, run by the
//! qemu-user runner in `.cargo/config.toml`) cannot exec an aarch64 binary directly, because
//! qemu-user does not follow `execve` into a foreign binary unless binfmt_misc is set up. Set
//! `FLOWCLOUD_TEST_RUNNER` to the runner's command line (`just edge-aarch64` does) and every
//! binary is started through it.
#![allow(dead_code, unreachable_pub)]

use std::process::Command;

/// A command that runs `program`, through `FLOWCLOUD_TEST_RUNNER` when it is set.
pub fn binary(program: &str) -> Command {
    let runner = std::env::var("FLOWCLOUD_TEST_RUNNER").unwrap_or_default();
    let mut words = runner.split_whitespace();
    match words.next() {
        Some(emulator) => {
            let mut command = Command::new(emulator);
            command.args(words).arg(program);
            command
        }
        None => Command::new(program),
    }
}

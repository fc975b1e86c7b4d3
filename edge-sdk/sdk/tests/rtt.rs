//! Round-trip time from the worker's receiver reports, in a test binary of its own so that no
//! other test competes for the CPU while it measures.

mod common;

use std::time::Duration;

use common::{Camera, Script, ScriptedReceiver, test_config};
use flowcloud_edge::sender::SenderEvent;

#[test]
fn rtt_from_receiver_reports_is_right_within_a_millisecond() {
    // The worker holds each SR 30 ms before answering; DLSR must take that out again.
    let receiver = ScriptedReceiver::start(
        "127.0.0.1:0".parse().unwrap(),
        Script {
            report_delay: Some(Duration::from_millis(30)),
            ..Script::default()
        },
    );
    let mut camera = Camera::new(test_config(receiver.addr), 160, 120, 300_000);
    let rtts = |c: &Camera| {
        c.events
            .events
            .iter()
            .filter_map(|e| match e {
                SenderEvent::RoundTrip { rtt } => Some(*rtt),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    assert!(camera.poll_until(Duration::from_secs(5), |c| rtts(c).len() >= 7));
    let mut samples = rtts(&camera);
    samples.sort_unstable();
    // The median is the measurement; single samples also carry whatever scheduling delay the
    // machine adds, but none may still contain the 30 ms the worker held the report.
    let median = samples[samples.len() / 2];
    assert!(
        median < Duration::from_millis(1),
        "loopback RTT measured as {median:?} (samples {samples:?})"
    );
    assert!(
        samples.iter().all(|&rtt| rtt < Duration::from_millis(15)),
        "{samples:?}"
    );
    assert!(camera.sender.stats().rtt.is_some());
}

//! systemd `Type=notify` with the real binary: READY=1 after start-up,
//! WATCHDOG=1 pings while it runs, STATUS= with the queue, STOPPING=1 on
//! SIGTERM — read from a datagram socket standing in for systemd.

mod support;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use support::process::Proc;

#[test]
fn ready_watchdog_status_and_stopping_reach_the_notify_socket() {
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let socket_path = root.path().join("notify.sock");
    let systemd = UnixDatagram::bind(&socket_path).unwrap_or_else(|e| panic!("bind: {e}"));
    systemd
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir(root.path().join("incoming")).unwrap_or_else(|e| panic!("{e}"));
    let conf = root.path().join("haproxystats.conf");
    std::fs::write(
        &conf,
        format!(
            "[paths]\nbase-dir = {}\n[process]\nsrc-dir = ${{paths:base-dir}}/incoming\n",
            root.path().display()
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut cmd = std::process::Command::new(support::haproxystats::BIN);
    cmd.arg("-f")
        .arg(&conf)
        .arg("process")
        .env_remove("HAPROXYSTATS_LOG")
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "2000000");
    let mut daemon = Proc::spawn("haproxystats", &mut cmd, &root.path().join("log"));
    let mut received = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 4096];
    let mut stopping_sent = false;
    while Instant::now() < deadline {
        if let Ok(n) = systemd.recv(&mut buf) {
            received.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        let seen = |what: &str| {
            received
                .iter()
                .any(|m| m.lines().any(|l| l.starts_with(what)))
        };
        if !stopping_sent && seen("READY=1") && seen("WATCHDOG=1") && seen("STATUS=") {
            daemon.terminate();
            stopping_sent = true;
        }
        if stopping_sent && seen("STOPPING=1") {
            break;
        }
    }
    let status = daemon.wait_exit(Duration::from_secs(15));
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "{}",
        daemon.log_tail()
    );
    let all = received.join("\n");
    for expected in ["READY=1", "WATCHDOG=1", "STATUS=", "STOPPING=1"] {
        assert!(all.contains(expected), "{expected} never sent; got:\n{all}");
    }
    // READY comes before the first watchdog ping, STOPPING after both.
    let position = |what: &str| received.iter().position(|m| m.contains(what));
    assert!(position("READY=1") <= position("WATCHDOG=1"), "{all}");
    assert!(position("WATCHDOG=1") < position("STOPPING=1"), "{all}");
}

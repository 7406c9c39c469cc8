//! Proves the test support works: real HAProxy processes answer on their
//! stats sockets and move their counters, a real carbon stack stores what is
//! sent to the relay, and everything is gone after drop.

mod support;

use std::time::{Duration, Instant};

use support::{FleetOptions, HaproxyFleet, parse_show_info, pid_exists, unix_now};

const STAT_HEADER: &str = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,";

#[test]
fn fleet_and_carbon_start_fast_answer_and_clean_up() {
    let started = Instant::now();
    let (mut fleet, mut carbon) =
        support::start_fleet_and_carbon(4, FleetOptions::default().with_tcp_stats(1));
    let start_time = started.elapsed();
    eprintln!("4 haproxy instances + carbon stack started in {start_time:?}");
    assert!(
        start_time < Duration::from_secs(10),
        "start took {start_time:?}"
    );

    // Every socket answers, each from its own process.
    let sockets: Vec<_> = std::fs::read_dir(fleet.socket_dir())
        .expect("socket dir")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .into_string()
                .expect("utf-8")
        })
        .collect();
    assert_eq!(sockets.len(), 4, "{sockets:?}");
    for i in 0..fleet.len() {
        let info = parse_show_info(&fleet.show(i, "show info"));
        assert_eq!(info.get("Name").map(String::as_str), Some("HAProxy"));
        assert_eq!(info.get("Pid"), Some(&fleet.pid(i).to_string()));
        let stat = fleet.show(i, "show stat");
        assert!(stat.starts_with(STAT_HEADER), "instance {i}: {stat}");
        for fe in fleet.options().frontend_names() {
            assert!(stat.contains(&format!("\n{fe},FRONTEND,")), "{stat}");
        }
        for (be, srv) in fleet.options().server_names() {
            assert!(stat.contains(&format!("\n{be},{srv},")), "{stat}");
        }
    }
    let tcp_info = parse_show_info(&fleet.show_tcp("show info"));
    assert_eq!(tcp_info.get("Name").map(String::as_str), Some("HAProxy"));
    assert_eq!(tcp_info.get("Pid"), Some(&fleet.pid(1).to_string()));
    assert!(fleet.show_tcp("show stat").starts_with(STAT_HEADER));

    // Traffic moves the counters of every frontend, backend and server.
    let phase = Instant::now();
    fleet.wait_servers_up(Duration::from_secs(5));
    eprintln!("servers UP after {:?}", phase.elapsed());
    let before: Vec<(u64, u64)> = (0..fleet.len())
        .map(|i| {
            (
                fleet.stat_u64(i, "fe_0", "FRONTEND", "stot"),
                fleet.stat_u64(i, "fe_0", "FRONTEND", "req_tot"),
            )
        })
        .collect();
    let phase = Instant::now();
    let sent = fleet.generate_traffic(10);
    eprintln!("{sent} requests took {:?}", phase.elapsed());
    assert_eq!(sent, 4 * 2 * 10);
    for (i, (stot, req_tot)) in before.into_iter().enumerate() {
        assert_eq!(fleet.stat_u64(i, "fe_0", "FRONTEND", "stot"), stot + 10);
        assert_eq!(
            fleet.stat_u64(i, "fe_0", "FRONTEND", "req_tot"),
            req_tot + 10
        );
        for (be, srv) in fleet.options().server_names() {
            assert!(
                fleet.stat_u64(i, &be, &srv, "stot") > 0,
                "{be}/{srv} got no traffic"
            );
        }
    }

    // Lines sent to the relay land in whisper with their value and timestamp.
    let phase = Instant::now();
    let now = unix_now();
    carbon
        .send_lines(&[
            &format!("a.b.c 42 {now}"),
            &format!("a.b.d 0.5 {}", now - 1),
        ])
        .expect("send to relay");
    let timeout = Duration::from_secs(15);
    assert_eq!(
        carbon.wait_for("a.b.c", now, timeout),
        Some(42.0),
        "{}",
        carbon.logs()
    );
    assert_eq!(
        carbon.wait_for("a.b.d", now - 1, timeout),
        Some(0.5),
        "{}",
        carbon.logs()
    );
    eprintln!("relay -> whisper round trip took {:?}", phase.elapsed());
    assert_eq!(carbon.fetch("a.b.c"), vec![(now, 42.0)]);
    assert_eq!(carbon.metric_paths(), vec!["a.b.c", "a.b.d"]);

    // Drop stops and reaps every process, and removes the temp dirs.
    let mut pids = fleet.pids_ever();
    pids.extend(carbon.pids_ever());
    assert_eq!(pids.len(), 6);
    let dirs = [fleet.root().to_path_buf(), carbon.root().to_path_buf()];
    let stopping = Instant::now();
    drop(fleet);
    drop(carbon);
    eprintln!("stopped everything in {:?}", stopping.elapsed());
    for pid in pids {
        assert!(!pid_exists(pid), "process {pid} still exists after drop");
    }
    for dir in dirs {
        assert!(!dir.exists(), "{} still exists after drop", dir.display());
    }
}

#[test]
fn kill_restart_and_reload_one_instance() {
    let mut fleet = HaproxyFleet::start(2, FleetOptions::default());
    let first = fleet.pid(0);

    fleet.kill(0);
    assert!(!fleet.is_running(0));
    assert!(!pid_exists(first), "killed process {first} still exists");
    assert!(
        fleet.try_show(0, "show info").is_err(),
        "killed instance still answers"
    );
    assert!(
        fleet.show(1, "show info").contains("Name: HAProxy"),
        "instance 1 is unaffected"
    );

    fleet.restart(0);
    let second = fleet.pid(0);
    assert_ne!(second, first);
    assert!(
        fleet
            .show(0, "show info")
            .contains(&format!("Pid: {second}"))
    );
    fleet.generate_traffic_to(0, 3);
    assert_eq!(fleet.stat_u64(0, "fe_1", "FRONTEND", "stot"), 3);

    let third = fleet.reload(0);
    assert_eq!(fleet.pid(0), third);
    assert_ne!(third, second);
    assert!(
        !pid_exists(second),
        "old process {second} still exists after reload"
    );
    let info = parse_show_info(&fleet.show(0, "show info"));
    assert_eq!(info.get("Pid"), Some(&third.to_string()));
    assert!(fleet.show(0, "show stat").starts_with(STAT_HEADER));
    // The new process starts its counters from zero and serves traffic.
    assert_eq!(fleet.stat_u64(0, "fe_1", "FRONTEND", "stot"), 0);
    fleet.generate_traffic_to(0, 2);
    assert_eq!(fleet.stat_u64(0, "fe_1", "FRONTEND", "stot"), 2);

    let pids = fleet.pids_ever();
    assert_eq!(pids.len(), 4, "{pids:?}");
    drop(fleet);
    for pid in pids {
        assert!(!pid_exists(pid), "process {pid} still exists after drop");
    }
}

#[test]
fn relay_down_refuses_then_delivers_after_start() {
    let mut carbon = support::CarbonStack::start();
    let first_relay = carbon.relay_pid();

    carbon.stop_relay();
    assert!(!pid_exists(first_relay));
    let down = unix_now();
    let refused = carbon.send_lines(&[&format!("relay.down 1 {down}")]);
    let err = refused.expect_err("relay is stopped, sending must fail");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");

    carbon.start_relay();
    assert_ne!(carbon.relay_pid(), first_relay);
    let up = unix_now();
    carbon
        .send_lines(&[&format!("relay.up 7 {up}")])
        .expect("send after start_relay");
    assert_eq!(
        carbon.wait_for("relay.up", up, Duration::from_secs(15)),
        Some(7.0),
        "{}",
        carbon.logs()
    );
    assert!(carbon.fetch("relay.down").is_empty());
    assert_eq!(carbon.metric_paths(), vec!["relay.up"]);
}

//! tansu (a Kafka-compatible broker, memory storage) for the benchmarks
//! that need a real broker; contrib/install-deps.sh installs it.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running tansu on a free loopback port; killed on drop.
pub struct Tansu {
    /// The broker process.
    pub child: Child,
    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    pub brokers: String,
    url: String,
}

fn binary() -> PathBuf {
    let home = std::env::var_os("HOME").unwrap_or_default();
    let installed = PathBuf::from(home).join(".cargo/bin/tansu");
    if installed.is_file() {
        installed
    } else {
        PathBuf::from("tansu")
    }
}

impl Tansu {
    /// Starts it and waits until it listens.
    pub fn start() -> Tansu {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("free port: {e}"));
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(binary())
            .args(["broker", "--listener-url", &url])
            .args(["--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start tansu (contrib/install-deps.sh): {e}"));
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "tansu did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Tansu {
            child,
            brokers: format!("127.0.0.1:{port}"),
            url,
        }
    }

    /// Creates `topic` (tansu creates none by itself).
    pub fn create_topic(&self, topic: &str, partitions: i32) {
        let created = Command::new(binary())
            .args([
                "topic",
                "create",
                topic,
                "--partitions",
                &partitions.to_string(),
            ])
            .args(["--broker", &self.url])
            .status()
            .unwrap_or_else(|e| panic!("tansu topic create: {e}"));
        assert!(created.success(), "tansu topic create {topic} failed");
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

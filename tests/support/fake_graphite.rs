//! A plaintext-carbon stand-in on loopback for the delivery tests: it
//! records the complete lines of every connection, in order, and can
//! misbehave the ways real peers do (never read, close or reset mid-stream).
//! The real carbon stack ([`super::CarbonStack`]) is for end-to-end tests;
//! this one is for what carbon cannot be made to do on purpose.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the fake does with one accepted connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Reads and records every line.
    Read,
    /// Accepts and never reads (TCP backpressure); the connection is held
    /// until the fake is dropped.
    Stall,
    /// Records what it reads, then closes after this many bytes (a FIN, or a
    /// RST if unread bytes are left, as the kernel does).
    CloseAfter(usize),
    /// Records what it reads, then resets (`SO_LINGER` 0) after this many
    /// bytes: whatever was acknowledged but not read is gone.
    ResetAfter(usize),
    /// Reads and throws away everything for this long, then closes: a
    /// relay shutting down (carbon-c-relay keeps reading for a while after
    /// SIGTERM and forwards nothing). Records nothing.
    DiscardFor(Duration),
}

type Decide = Box<dyn Fn(usize) -> Behaviour + Send>;

/// Lines received, one `Vec` per accepted connection, in accept order.
type Record = Arc<Mutex<Vec<Vec<String>>>>;

/// The fake carbon; stops accepting (and closes what it holds) on drop.
pub struct FakeGraphite {
    port: u16,
    connections: Record,
    decide: Arc<Mutex<Decide>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeGraphite {
    /// A fake that reads everything, on a free port.
    pub fn start() -> FakeGraphite {
        FakeGraphite::start_with(|_| Behaviour::Read, None)
    }

    /// `decide(n)` says what connection `n` (0-based) gets; `rcvbuf`
    /// shrinks the receive buffer so that backpressure comes soon.
    pub fn start_with(
        decide: impl Fn(usize) -> Behaviour + Send + 'static,
        rcvbuf: Option<i32>,
    ) -> FakeGraphite {
        FakeGraphite::bind(0, Box::new(decide), rcvbuf)
    }

    /// The same on a given port (a peer coming back where another was).
    pub fn start_on(
        port: u16,
        decide: impl Fn(usize) -> Behaviour + Send + 'static,
        rcvbuf: Option<i32>,
    ) -> FakeGraphite {
        FakeGraphite::bind(port, Box::new(decide), rcvbuf)
    }

    fn bind(port: u16, decide: Decide, rcvbuf: Option<i32>) -> FakeGraphite {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("bind 127.0.0.1:{port}: {e}"));
        if let Some(size) = rcvbuf {
            set_int_option(&listener, libc::SOL_SOCKET, libc::SO_RCVBUF, size);
        }
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let port = listener.local_addr().expect("local_addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let connections: Record = Arc::default();
        let decide = Arc::new(Mutex::new(decide));
        let thread = {
            let (stop, record, decide) = (
                Arc::clone(&stop),
                Arc::clone(&connections),
                Arc::clone(&decide),
            );
            std::thread::spawn(move || accept_loop(&listener, &stop, &record, &decide))
        };
        FakeGraphite {
            port,
            connections,
            decide,
            stop,
            thread: Some(thread),
        }
    }

    /// Where it listens.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// From now on, what new connections get.
    pub fn set_behaviour(&self, decide: impl Fn(usize) -> Behaviour + Send + 'static) {
        *self.decide.lock().unwrap_or_else(|e| e.into_inner()) = Box::new(decide);
    }

    /// Lines received per connection.
    pub fn per_connection(&self) -> Vec<Vec<String>> {
        self.connections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Every line received, over every connection, in arrival order.
    pub fn lines(&self) -> Vec<String> {
        self.per_connection().into_iter().flatten().collect()
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.connections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Waits until `done(&lines)` holds for every line received so far, or
    /// panics after `timeout` saying what it waited for.
    pub fn wait_for(&self, what: &str, timeout: Duration, done: impl Fn(&[String]) -> bool) {
        self.wait_for_connections(what, timeout, |connections| done(&connections.concat()));
    }

    /// Waits until `done(&per_connection)` holds, or panics after `timeout`
    /// saying what it waited for; answers the lines of each connection.
    pub fn wait_for_connections(
        &self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&[Vec<String>]) -> bool,
    ) -> Vec<Vec<String>> {
        let deadline = Instant::now() + timeout;
        loop {
            let connections = self.per_connection();
            if done(&connections) {
                return connections;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what}: {} lines over {} connections",
                connections.iter().map(Vec::len).sum::<usize>(),
                connections.len()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the last connection received `count` lines or more, or
    /// panics after `timeout`; answers that connection's lines.
    pub fn wait_for_last(&self, count: usize, timeout: Duration) -> Vec<String> {
        let what = format!("{count} lines on the last connection");
        let mut connections = self.wait_for_connections(&what, timeout, |connections| {
            connections.last().is_some_and(|last| last.len() >= count)
        });
        connections.pop().unwrap_or_default()
    }
}

impl Drop for FakeGraphite {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, stop: &AtomicBool, record: &Record, decide: &Mutex<Decide>) {
    let mut held = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let Ok((stream, _)) = listener.accept() else {
            std::thread::sleep(Duration::from_millis(2));
            continue;
        };
        let index = {
            let mut all = record.lock().unwrap_or_else(|e| e.into_inner());
            all.push(Vec::new());
            all.len() - 1
        };
        let behaviour = (decide.lock().unwrap_or_else(|e| e.into_inner()))(index);
        let limit = match behaviour {
            Behaviour::Stall => {
                held.push(stream);
                continue;
            }
            Behaviour::Read => usize::MAX,
            Behaviour::CloseAfter(bytes) => bytes,
            Behaviour::ResetAfter(bytes) => {
                set_linger_zero(&stream);
                bytes
            }
            Behaviour::DiscardFor(how_long) => {
                std::thread::spawn(move || discard(stream, how_long));
                continue;
            }
        };
        let record = Arc::clone(record);
        std::thread::spawn(move || read_lines(stream, &record, index, limit));
    }
    // Dropping `held` closes the stalled connections.
}

fn read_lines(stream: TcpStream, record: &Mutex<Vec<Vec<String>>>, index: usize, limit: usize) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
    let mut reader = BufReader::new(stream);
    let mut read = 0;
    let mut line = String::new();
    while read < limit {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                read += n;
                if line.ends_with('\n') {
                    let mut all = record.lock().unwrap_or_else(|e| e.into_inner());
                    all[index].push(line.trim_end().to_string());
                }
            }
        }
    }
    // Dropping the reader closes (or resets) the connection mid-stream.
}

fn discard(mut stream: TcpStream, how_long: Duration) {
    use std::io::Read;
    let _ = stream.set_nonblocking(false);
    let until = Instant::now() + how_long;
    let mut buf = vec![0u8; 64 * 1024];
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            break;
        }
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
    // Dropping the stream closes the connection.
}

fn set_int_option(listener: &TcpListener, level: i32, name: i32, value: i32) {
    // SAFETY: setsockopt on a socket we own, with a valid int option.
    let rc = unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            level,
            name,
            std::ptr::from_ref(&value).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt({level}, {name}, {value})");
}

fn set_linger_zero(stream: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on a socket we own, with a valid linger struct.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            std::ptr::from_ref(&linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt SO_LINGER 0");
}

//! A tiny HTTP/1.1 server on 127.0.0.1 that answers `200 ok` to everything:
//! the servers of every generated HAProxy backend point at it, so they are UP
//! and get traffic.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// How long an idle keep-alive connection is kept before the responder closes it.
const IDLE: Duration = Duration::from_secs(10);

/// A running responder; stops accepting on drop.
pub struct HttpResponder {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    served: Arc<AtomicU64>,
    accept: Option<JoinHandle<()>>,
}

impl HttpResponder {
    /// Binds 127.0.0.1:0 and serves on a background thread (one thread per connection).
    pub fn start() -> HttpResponder {
        let listener = TcpListener::bind("127.0.0.1:0").expect("responder: bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("responder: local_addr");
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicU64::new(0));
        let accept = {
            let stop = Arc::clone(&stop);
            let served = Arc::clone(&served);
            thread::Builder::new()
                .name("http-responder".into())
                .spawn(move || {
                    for conn in listener.incoming() {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let Ok(conn) = conn else { continue };
                        let served = Arc::clone(&served);
                        let _ = thread::Builder::new()
                            .name("http-responder-conn".into())
                            .spawn(move || {
                                let _ = serve(conn, &served);
                            });
                    }
                })
                .expect("spawn responder thread")
        };
        HttpResponder {
            addr,
            stop,
            served,
            accept: Some(accept),
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many requests it answered (health checks included).
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::SeqCst)
    }
}

impl Drop for HttpResponder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept().
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(handle) = self.accept.take() {
            let _ = handle.join();
        }
    }
}

/// Answers every request on `conn` until the peer closes, asks to close, or idles.
fn serve(conn: TcpStream, served: &AtomicU64) -> io::Result<()> {
    conn.set_read_timeout(Some(IDLE))?;
    conn.set_write_timeout(Some(IDLE))?;
    conn.set_nodelay(true)?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut writer = conn;
    loop {
        let mut close = false;
        let mut content_length = 0usize;
        let mut line = String::new();
        // Request line, then headers up to the empty line.
        let mut first = true;
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let trimmed = line.trim_end();
            if trimmed.is_empty() {
                if first {
                    continue; // stray CRLF between requests
                }
                break;
            }
            first = false;
            if let Some((name, value)) = trimmed.split_once(':') {
                let value = value.trim();
                if name.eq_ignore_ascii_case("content-length") {
                    content_length = value.parse().unwrap_or(0);
                } else if name.eq_ignore_ascii_case("connection")
                    && value.eq_ignore_ascii_case("close")
                {
                    close = true;
                }
            }
        }
        if content_length > 0 {
            io::copy(
                &mut (&mut reader).take(content_length as u64),
                &mut io::sink(),
            )?;
        }
        let connection = if close { "close" } else { "keep-alive" };
        // One write: several small ones would meet Nagle and delayed ACKs.
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 3\r\nconnection: {connection}\r\n\r\nok\n"
        );
        writer.write_all(response.as_bytes())?;
        served.fetch_add(1, Ordering::SeqCst);
        if close {
            return Ok(());
        }
    }
}

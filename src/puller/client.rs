//! One request to one HAProxy source: connect (timeout per attempt,
//! retries with a pause between attempts), send one command, read the reply
//! to EOF — HAProxy closes a non-interactive stats connection after answering.
//! Every kind of source (stats socket, master CLI, HTTP stats page) goes
//! through here, so `timeout`, `retries`, `interval` and `buffer-limit` mean
//! the same for all: an HTTP page's connection attempt is its TCP connect
//! and TLS handshake, its reply the body of a `200 OK`.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

use super::http;
use crate::config::{Retries, StatsEndpoint};
use crate::log_limit::Quoted;

/// One command, to a stats socket or, through a master CLI, to one of the
/// master's workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Command {
    /// `show info`, `show stat`, `show proc`.
    pub name: &'static str,
    /// The PID of the worker it goes to through a master CLI (`@!<pid>`).
    pub worker: Option<u32>,
}

impl Command {
    /// `name` to the socket itself.
    pub const fn plain(name: &'static str) -> Command {
        Command { name, worker: None }
    }
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.worker {
            Some(pid) => write!(f, "@!{pid} {}", self.name),
            None => f.write_str(self.name),
        }
    }
}

/// How connections are attempted (`[pull] timeout`, `retries`, `interval`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConnectPolicy {
    /// Bound on one connection attempt.
    pub timeout: Duration,
    /// Extra attempts after a failed one.
    pub retries: Retries,
    /// Pause between attempts.
    pub interval: Duration,
}

impl ConnectPolicy {
    /// Whether another attempt may follow attempt number `attempt` (1-based).
    fn may_retry(&self, attempt: u32) -> bool {
        match self.retries {
            Retries::Forever => true,
            Retries::Times(extra) => attempt <= extra,
        }
    }
}

/// Why a request to a stats socket failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// Every connection attempt failed.
    #[error("cannot connect after {attempts} attempt(s): {source}")]
    Connect {
        /// Attempts made.
        attempts: u32,
        /// The last attempt's error.
        source: io::Error,
    },
    /// Writing the command failed.
    #[error("cannot send '{command}': {source}")]
    Send {
        /// The command.
        command: Command,
        /// The write error.
        source: io::Error,
    },
    /// Reading the reply failed.
    #[error("cannot read the reply to '{command}': {source}")]
    Read {
        /// The command.
        command: Command,
        /// The read error.
        source: io::Error,
    },
    /// The reply was larger than `buffer-limit`.
    #[error("reply to '{command}' is larger than buffer-limit ({limit} bytes)")]
    TooLarge {
        /// The command.
        command: Command,
        /// The configured limit.
        limit: usize,
    },
    /// The socket closed without a byte of reply.
    #[error("empty reply to '{command}'")]
    Empty {
        /// The command.
        command: Command,
    },
    /// The reply ended before HAProxy's closing empty line.
    #[error("reply to '{command}' cut short (no closing empty line; the master reloading?)")]
    Cut {
        /// The command.
        command: Command,
    },
    /// Not HAProxy's reply to the command: a master CLI answering for
    /// itself (the worker is gone: "Can't find the target PID ..."), a page
    /// that is not the stats page (an HTML error page, another service).
    #[error("{who} answered '{command}' with '{said}'")]
    Unexpected {
        /// `the master`, `the stats page`.
        who: &'static str,
        /// The command.
        command: Command,
        /// The first line of its answer, escaped and cut.
        said: Quoted,
    },
    /// The HTTP stats page did not answer `200 OK`.
    #[error(transparent)]
    Http(#[from] http::HttpError),
}

impl QueryError {
    /// A short name for logs and counters.
    pub fn kind(&self) -> &'static str {
        match self {
            QueryError::Connect { .. } => "connect",
            QueryError::Send { .. } => "send",
            QueryError::Read { .. } => "read",
            QueryError::TooLarge { .. } => "too_large",
            QueryError::Empty { .. } => "empty",
            QueryError::Cut { .. } => "cut",
            QueryError::Unexpected { .. } => "unexpected",
            QueryError::Http(_) => "http",
        }
    }
}

/// Where the "connection failed, retrying" lines of requests go. A request
/// to a source of its own logs each of its retries; the requests to the
/// workers of one master in one cycle share one `RetryLines`, which logs
/// the first retry only (the others at debug level): a master listing
/// hundreds of workers, refusing connections, would otherwise make
/// hundreds of lines a cycle. Every failure still ends in the cycle's line.
#[derive(Debug, Default)]
pub struct RetryLines {
    shared: bool,
    retried: AtomicU64,
}

impl RetryLines {
    /// Every retry logged.
    pub fn each() -> RetryLines {
        RetryLines::default()
    }

    /// The first retry of the requests sharing it logged, the rest at debug.
    pub fn first_of_many() -> RetryLines {
        RetryLines {
            shared: true,
            ..RetryLines::default()
        }
    }

    fn retrying(
        &self,
        endpoint: &StatsEndpoint,
        command: Command,
        attempt: u32,
        error: &io::Error,
        interval: Duration,
    ) {
        let before = self.retried.fetch_add(1, Ordering::Relaxed);
        if !self.shared || before == 0 {
            tracing::warn!(
                socket = %endpoint,
                %command,
                attempt,
                error = %error,
                "connection failed, retrying in {interval:?}{}",
                if self.shared {
                    " (further retries to this master's workers this cycle: debug level)"
                } else {
                    ""
                }
            );
        } else {
            tracing::debug!(
                socket = %endpoint,
                %command,
                attempt,
                error = %error,
                "connection failed, retrying in {interval:?}"
            );
        }
    }
}

/// Sends `command` to `endpoint` (an HTTP page: its CSV); the reply is
/// then read a chunk at a time ([`Reply::read_chunk`]), so that a caller
/// can write it out as it comes instead of holding it whole.
pub async fn open(
    endpoint: &StatsEndpoint,
    command: Command,
    policy: &ConnectPolicy,
    limit: usize,
    retry_lines: &RetryLines,
) -> Result<Reply, QueryError> {
    let mut attempt: u32 = 0;
    loop {
        attempt = attempt.saturating_add(1);
        let error = match connect(endpoint, policy.timeout).await {
            Ok(stream) => return Reply::start(stream, endpoint, command, limit).await,
            Err(error) => error,
        };
        if !policy.may_retry(attempt) {
            return Err(QueryError::Connect {
                attempts: attempt,
                source: error,
            });
        }
        retry_lines.retrying(endpoint, command, attempt, &error, policy.interval);
        tokio::time::sleep(policy.interval).await;
    }
}

/// Reads the whole reply to `command` (for short ones: `show proc`).
pub async fn query(
    endpoint: &StatsEndpoint,
    command: Command,
    policy: &ConnectPolicy,
    limit: usize,
) -> Result<Vec<u8>, QueryError> {
    let mut reply = open(endpoint, command, policy, limit, &RetryLines::each()).await?;
    let mut whole = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = reply.read_chunk(&mut buf).await?;
        if n == 0 {
            return Ok(whole);
        }
        whole.extend_from_slice(buf.get(..n).unwrap_or_default());
    }
}

/// A connection to a source (a Unix or TCP socket, TLS over TCP).
pub(crate) trait ReplyStream: AsyncRead + AsyncWrite + Unpin + Send {}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> ReplyStream for S {}

/// Where a reply's bytes come from: the connection itself, or an HTTP body.
pub(super) type ReplyBytes = Box<dyn AsyncRead + Unpin + Send>;

/// The reply to a command sent by [`open`], read to EOF in chunks.
pub struct Reply {
    bytes: ReplyBytes,
    /// What must live as long as the reply is read (an HTTP connection's task).
    _keep: Option<http::Driver>,
    /// Who answers when it is not HAProxy's reply (see [`check_start`]).
    relay: Option<&'static str>,
    /// A worker's reply relayed by a master must end as HAProxy ends every
    /// CLI reply, with an empty line: a master that re-executes itself on a
    /// reload closes its connections, cutting replies short.
    must_end_blank: bool,
    /// The last two bytes read.
    tail: [u8; 2],
    command: Command,
    limit: usize,
    read: usize,
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reply")
            .field("command", &self.command)
            .field("read", &self.read)
            .finish_non_exhaustive()
    }
}

impl Reply {
    async fn start(
        mut stream: Box<dyn ReplyStream>,
        endpoint: &StatsEndpoint,
        command: Command,
        limit: usize,
    ) -> Result<Reply, QueryError> {
        if let StatsEndpoint::Http(url) = endpoint {
            let (bytes, driver) = http::get(stream, url).await?;
            return Ok(Reply {
                bytes,
                _keep: Some(driver),
                relay: Some("the stats page"),
                must_end_blank: false,
                tail: [0; 2],
                command,
                limit,
                read: 0,
            });
        }
        let line = format!("{command}\n");
        let send = |source| QueryError::Send { command, source };
        stream.write_all(line.as_bytes()).await.map_err(send)?;
        if matches!(endpoint, StatsEndpoint::Master(_)) {
            // The master CLI answers a command once the client has no more
            // to say; a stats socket does not need this.
            stream.shutdown().await.map_err(send)?;
        }
        Ok(Reply {
            bytes: Box::new(stream),
            _keep: None,
            relay: command.worker.map(|_| "the master"),
            must_end_blank: command.worker.is_some(),
            tail: [0; 2],
            command,
            limit,
            read: 0,
        })
    }

    /// Fills `buf` with the next bytes of the reply (less only at its end);
    /// returns how many, 0 once the reply is over. Fails when the reply
    /// goes past the limit, ends without a single byte, or, through a
    /// master CLI or from a page, does not start as HAProxy's reply does
    /// (or, through a master, does not end as it does).
    pub async fn read_chunk(&mut self, buf: &mut [u8]) -> Result<usize, QueryError> {
        let command = self.command;
        let first = self.read == 0;
        let mut filled = 0;
        let mut ended = false;
        while filled < buf.len() {
            let Some(free) = buf.get_mut(filled..) else {
                break;
            };
            let n = self
                .bytes
                .read(free)
                .await
                .map_err(|source| QueryError::Read { command, source })?;
            if n == 0 {
                ended = true;
                break;
            }
            filled += n;
            self.read += n;
            if self.read > self.limit {
                return Err(QueryError::TooLarge {
                    command,
                    limit: self.limit,
                });
            }
        }
        if filled == 0 && self.read == 0 {
            return Err(QueryError::Empty { command });
        }
        let chunk = buf.get(..filled).unwrap_or_default();
        if let (true, Some(who)) = (first, self.relay) {
            check_start(who, command, chunk)?;
        }
        match chunk {
            [.., a, b] => self.tail = [*a, *b],
            [b] => self.tail = [self.tail[1], *b],
            [] => {}
        }
        if ended && self.must_end_blank && self.tail != *b"\n\n" {
            return Err(QueryError::Cut { command });
        }
        Ok(filled)
    }
}

/// A master relays a worker's reply as it is, or answers for itself when it
/// cannot; a URL may lead to another page than HAProxy's stats. HAProxy's
/// replies to these commands start the same way in every version.
fn check_start(who: &'static str, command: Command, first: &[u8]) -> Result<(), QueryError> {
    let expected: &[u8] = match command.name {
        "show info" => b"Name: ",
        "show stat" => b"# pxname,",
        _ => return Ok(()),
    };
    if first.starts_with(expected) {
        return Ok(());
    }
    let line = first.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    Err(QueryError::Unexpected {
        who,
        command,
        said: Quoted::new(line),
    })
}

async fn connect(endpoint: &StatsEndpoint, timeout: Duration) -> io::Result<Box<dyn ReplyStream>> {
    let attempt = async {
        let stream: Box<dyn ReplyStream> = match endpoint {
            StatsEndpoint::Unix(path) | StatsEndpoint::Master(path) => {
                Box::new(UnixStream::connect(path).await?)
            }
            StatsEndpoint::Tcp { host, port } => {
                Box::new(TcpStream::connect((host.as_str(), *port)).await?)
            }
            StatsEndpoint::Http(url) => http::connect(url).await?,
        };
        Ok(stream)
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("connect timed out after {timeout:?}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::UnixListener;

    async fn ask(
        endpoint: &StatsEndpoint,
        command: &'static str,
        retries: Retries,
        limit: usize,
    ) -> Result<Vec<u8>, QueryError> {
        query(endpoint, Command::plain(command), &policy(retries), limit).await
    }

    fn policy(retries: Retries) -> ConnectPolicy {
        ConnectPolicy {
            timeout: Duration::from_millis(200),
            retries,
            interval: Duration::from_millis(10),
        }
    }

    /// A stats socket in `dir` that answers every connection with `reply`.
    fn answering_socket(dir: &std::path::Path, reply: &'static [u8]) -> std::path::PathBuf {
        let path = dir.join("answering.sock");
        answering_socket_at(path.clone(), reply);
        path
    }

    fn temp() -> tempfile::TempDir {
        tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"))
    }

    #[tokio::test]
    async fn reads_the_whole_reply() {
        let dir = temp();
        let path = answering_socket(dir.path(), b"Name: HAProxy\nVersion: 2.6\n");
        let reply = ask(
            &StatsEndpoint::Unix(path),
            "show info",
            Retries::Times(0),
            1024,
        )
        .await;
        assert_eq!(reply.ok(), Some(b"Name: HAProxy\nVersion: 2.6\n".to_vec()));
    }

    #[tokio::test]
    async fn a_reply_over_the_buffer_limit_fails() {
        let dir = temp();
        let path = answering_socket(dir.path(), b"0123456789");
        let endpoint = StatsEndpoint::Unix(path);
        let exact = ask(&endpoint, "show stat", Retries::Times(0), 10).await;
        assert!(exact.is_ok(), "{exact:?}");
        let over = ask(&endpoint, "show stat", Retries::Times(0), 9).await;
        assert!(
            matches!(over, Err(QueryError::TooLarge { limit: 9, .. })),
            "{over:?}"
        );
    }

    #[tokio::test]
    async fn an_empty_reply_fails() {
        let dir = temp();
        let path = answering_socket(dir.path(), b"");
        let reply = ask(
            &StatsEndpoint::Unix(path),
            "show stat",
            Retries::Times(0),
            10,
        )
        .await;
        assert!(matches!(reply, Err(QueryError::Empty { .. })), "{reply:?}");
    }

    #[tokio::test]
    async fn retries_then_reports_the_attempts() {
        let dir = temp();
        let missing = StatsEndpoint::Unix(dir.path().join("missing.sock"));
        let reply = ask(&missing, "show info", Retries::Times(2), 10).await;
        assert!(
            matches!(reply, Err(QueryError::Connect { attempts: 3, .. })),
            "{reply:?}"
        );
        let reply = ask(&missing, "show info", Retries::Times(0), 10).await;
        assert!(
            matches!(reply, Err(QueryError::Connect { attempts: 1, .. })),
            "{reply:?}"
        );
    }

    #[tokio::test]
    async fn a_socket_that_appears_during_retries_is_reached() {
        let dir = temp();
        let path = dir.path().join("late.sock");
        let endpoint = StatsEndpoint::Unix(path.clone());
        let late = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(30)).await;
            answering_socket_at(path, b"ok\n");
        });
        let reply = ask(&endpoint, "show info", Retries::Forever, 10).await;
        assert_eq!(reply.ok(), Some(b"ok\n".to_vec()));
        let _ = late.await;
    }

    fn answering_socket_at(path: std::path::PathBuf, reply: &'static [u8]) {
        let listener = match UnixListener::bind(&path) {
            Ok(listener) => listener,
            Err(e) => panic!("bind {}: {e}", path.display()),
        };
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut command = [0u8; 64];
                let _ = stream.read(&mut command).await;
                let _ = stream.write_all(reply).await;
            }
        });
    }

    #[tokio::test]
    async fn a_worker_reply_cut_before_its_closing_empty_line_fails() {
        let dir = temp();
        let whole =
            StatsEndpoint::Master(answering_socket(dir.path(), b"Name: HAProxy\nPid: 7\n\n"));
        let info = Command {
            name: "show info",
            worker: Some(7),
        };
        let reply = query(&whole, info, &policy(Retries::Times(0)), 100).await;
        assert!(reply.is_ok(), "{reply:?}");
        let cut_dir = temp();
        let cut =
            StatsEndpoint::Master(answering_socket(cut_dir.path(), b"Name: HAProxy\nPid: 7\n"));
        let reply = query(&cut, info, &policy(Retries::Times(0)), 100).await;
        assert!(matches!(reply, Err(QueryError::Cut { .. })), "{reply:?}");
    }

    #[test]
    fn an_answer_that_is_not_haproxys_reply_is_refused() {
        let info = Command {
            name: "show info",
            worker: Some(12),
        };
        assert!(check_start("the master", info, b"Name: HAProxy\nVersion: 2.6\n").is_ok());
        let error = check_start(
            "the master",
            info,
            b"Can't find the target PID matching the prefix '@!12'\n",
        );
        assert_eq!(
            error.map_err(|e| e.to_string()),
            Err("the master answered '@!12 show info' with \
                 'Can't find the target PID matching the prefix '@!12''"
                .into())
        );
        let stat = Command::plain("show stat");
        assert!(check_start("the stats page", stat, b"# pxname,svname,qcur\n").is_ok());
        assert!(check_start("the stats page", stat, b"<!DOCTYPE html>\n").is_err());
    }

    #[tokio::test]
    async fn tcp_endpoints_work_too() {
        let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
            Ok(listener) => listener,
            Err(e) => panic!("bind: {e}"),
        };
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        tokio::spawn(async move {
            if let Ok((mut stream, _)) = listener.accept().await {
                let mut command = [0u8; 64];
                let _ = stream.read(&mut command).await;
                let _ = stream.write_all(b"tcp reply\n").await;
            }
        });
        let endpoint = StatsEndpoint::Tcp {
            host: "127.0.0.1".into(),
            port,
        };
        let reply = ask(&endpoint, "show info", Retries::Times(0), 100).await;
        assert_eq!(reply.ok(), Some(b"tcp reply\n".to_vec()));
    }
}

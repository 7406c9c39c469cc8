//! One pull cycle (SPEC §3): `show info` and `show stat` to every stats
//! socket concurrently, each on its own connection; replies written into
//! `tmp-dst-dir/<ts>` off the event loop; the directory published into
//! `dst-dir` only when every request succeeded, removed otherwise.
//!
//! A master CLI is asked for its current workers first ([`plan`]), and
//! again at the end, so that a reload during the pull fails the cycle
//! instead of publishing an old worker; an HTTP page gives `show stat` only.
//! `pull-timeout` bounds all of it.

use std::collections::BTreeSet;
use std::future::Future;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use super::client::{self, Command, ConnectPolicy, QueryError, RetryLines};
use super::master::{self, MasterError, Worker};
use super::snapshot::{self, SnapshotIoError};
use crate::config::{PullConfig, StatsEndpoint};

/// The two requests made to every socket, with the suffix of their file.
const REQUESTS: [(&str, &str); 2] = [("show info", "_info"), ("show stat", "_stat")];

/// One stats socket to pull and the prefix of its files in the snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// File-name prefix: the socket's base name (a master's workers add
    /// `@<n>`), or `host:port` for TCP and HTTP.
    pub name: String,
    /// Where to connect.
    pub endpoint: StatsEndpoint,
}

/// Listing `socket-dir` failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot list socket-dir {path}: {source}")]
pub struct DiscoverError {
    /// The socket directory.
    pub path: PathBuf,
    /// The error.
    pub source: std::io::Error,
}

/// The sockets of one cycle: every UNIX socket directly in `socket_dir`
/// (other files ignored), sorted by name, then every `servers` entry. Blocks.
pub fn discover(
    socket_dir: Option<&Path>,
    servers: &[StatsEndpoint],
) -> Result<Vec<Source>, DiscoverError> {
    let mut sources = Vec::new();
    if let Some(dir) = socket_dir {
        let entries = std::fs::read_dir(dir).map_err(|source| DiscoverError {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut sockets: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .filter(|entry| entry.file_type().map(|t| t.is_socket()).unwrap_or(false))
            .map(|entry| entry.path())
            .collect();
        sockets.sort();
        sources.extend(sockets.into_iter().map(|path| Source {
            name: base_name(&path),
            endpoint: StatsEndpoint::Unix(path),
        }));
    }
    for endpoint in servers {
        let name = match endpoint {
            StatsEndpoint::Unix(path) | StatsEndpoint::Master(path) => base_name(path),
            StatsEndpoint::Tcp { host, port } => format!("{host}:{port}"),
            // `host:port`: credentials never reach a file name.
            StatsEndpoint::Http(url) => url.host_port(),
        };
        sources.push(Source {
            name,
            endpoint: endpoint.clone(),
        });
    }
    make_names_unique(&mut sources);
    Ok(sources)
}

fn base_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.to_string_lossy().into_owned())
}

/// Two sockets with one base name (same name in two directories) would write
/// the same file; the later ones get `#2`, `#3`, ... appended.
fn make_names_unique(sources: &mut [Source]) {
    let mut seen = BTreeSet::new();
    for source in sources.iter_mut() {
        let mut candidate = source.name.clone();
        let mut n = 1;
        while !seen.insert(candidate.clone()) {
            n += 1;
            candidate = format!("{}#{n}", source.name);
        }
        source.name = candidate;
    }
}

/// What a cycle needs besides the sockets: the `[pull]` settings.
#[derive(Debug, Clone)]
pub struct CycleSettings {
    /// Connection attempts.
    pub policy: ConnectPolicy,
    /// Largest reply accepted.
    pub buffer_limit: usize,
    /// Where snapshots are assembled.
    pub tmp_dst_dir: PathBuf,
    /// Where complete snapshots appear.
    pub dst_dir: PathBuf,
    /// Bound on the whole cycle.
    pub pull_timeout: Option<Duration>,
    /// Concurrent file writes.
    pub writers: usize,
    /// Most workers pulled through one master CLI.
    pub master_worker_limit: usize,
}

impl CycleSettings {
    /// The cycle settings of a `[pull]` section.
    pub fn from_config(pull: &PullConfig) -> CycleSettings {
        CycleSettings {
            policy: ConnectPolicy {
                timeout: pull.timeout,
                retries: pull.retries,
                interval: pull.interval,
            },
            buffer_limit: pull.buffer_limit,
            tmp_dst_dir: pull.tmp_dst_dir.clone(),
            dst_dir: pull.dst_dir.clone(),
            pull_timeout: pull.pull_timeout,
            writers: pull.workers.max(1),
            master_worker_limit: pull.master_worker_limit,
        }
    }
}

/// One request of the cycle that failed.
#[derive(Debug)]
pub struct RequestFailure {
    /// The socket's name.
    pub source: String,
    /// What went wrong.
    pub error: RequestError,
}

/// Why one request of a cycle failed.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// Talking to the socket failed.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// Writing its reply failed.
    #[error(transparent)]
    Io(#[from] SnapshotIoError),
    /// A master CLI could not list its workers, or they changed.
    #[error(transparent)]
    Master(#[from] MasterError),
    /// The cycle's deadline (or a shutdown) cancelled it.
    #[error("'{command}' cancelled: {reason}")]
    Cancelled {
        /// The command.
        command: &'static str,
        /// `pull-timeout` or shutdown.
        reason: &'static str,
    },
    /// The task running it died (a bug).
    #[error("'{command}' task failed: {detail}")]
    Task {
        /// The command.
        command: &'static str,
        /// What the runtime said.
        detail: String,
    },
}

/// How a cycle ended.
#[derive(Debug)]
pub enum CycleOutcome {
    /// Every request succeeded; the snapshot is in dst-dir.
    Published {
        /// The published directory.
        dir: PathBuf,
        /// Sockets pulled.
        sources: usize,
        /// Bytes written.
        bytes: u64,
    },
    /// No socket to pull.
    NoSources,
    /// Some requests failed; nothing was published.
    Failed {
        /// Every failed request.
        failures: Vec<RequestFailure>,
    },
    /// A filesystem step failed; nothing was published.
    Io(SnapshotIoError),
}

/// What a cycle found odd about a master's list of workers (more than
/// `master-worker-limit`, relative numbers claimed twice), in one sentence:
/// the actor logs it, rate-limited, so that a hostile master costs one
/// line now and then, not one per worker and cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerNotice {
    /// The master's source name.
    pub master: String,
    /// What was odd, and what the cycle did about it.
    pub text: String,
}

/// How a cycle ended, and what it noticed on the way.
#[derive(Debug)]
pub struct Report {
    /// How it ended.
    pub outcome: CycleOutcome,
    /// One per master whose list of workers was odd.
    pub notices: Vec<WorkerNotice>,
}

/// At most this many failures are spelled out in a failed cycle's line.
const FAILURES_SHOWN: usize = 8;

/// A failed cycle as one bounded log line: the sources that failed (at
/// most [`FAILURES_SHOWN`] named, then how many more) and the first errors
/// (then how many more). A master listing thousands of workers, all failing,
/// must not make a line of megabytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureSummary {
    /// `a.sock,master.sock@1,...,+N more`.
    pub sources: String,
    /// `a.sock: <error>; ...; and N more`.
    pub errors: String,
}

impl FailureSummary {
    /// Sums `failures` up.
    pub fn of(failures: &[RequestFailure]) -> FailureSummary {
        let mut seen = BTreeSet::new();
        let sources: Vec<&str> = failures
            .iter()
            .map(|failure| failure.source.as_str())
            .filter(|source| seen.insert(*source))
            .collect();
        let mut shown: Vec<String> = sources
            .iter()
            .take(FAILURES_SHOWN)
            .map(|source| (*source).to_owned())
            .collect();
        if sources.len() > FAILURES_SHOWN {
            shown.push(format!("+{} more", sources.len() - FAILURES_SHOWN));
        }
        let mut errors: Vec<String> = failures
            .iter()
            .take(FAILURES_SHOWN)
            .map(|failure| format!("{}: {}", failure.source, failure.error))
            .collect();
        if failures.len() > FAILURES_SHOWN {
            errors.push(format!(
                "and {} more failed request(s)",
                failures.len() - FAILURES_SHOWN
            ));
        }
        FailureSummary {
            sources: shown.join(","),
            errors: errors.join("; "),
        }
    }
}

/// One request of a cycle: what to ask where, and the file of its reply.
#[derive(Debug, Clone)]
struct Job {
    /// Named in failures: the source, or `<master>@<n>` for a worker.
    source: String,
    endpoint: StatsEndpoint,
    command: Command,
    file: String,
    /// Shared by the requests to one master's workers.
    retry_lines: Arc<RetryLines>,
}

/// A master whose workers this cycle pulls, to be checked at its end.
#[derive(Debug)]
struct Pulled {
    source: String,
    master: PathBuf,
    workers: Vec<Worker>,
}

/// What a cycle asks: every request of every source, the masters to check
/// at the end, the masters that could not list their workers, and what was
/// odd about the lists of the others.
#[derive(Debug, Default)]
struct Plan {
    jobs: Vec<Job>,
    masters: Vec<Pulled>,
    failures: Vec<RequestFailure>,
    notices: Vec<WorkerNotice>,
}

/// The requests of the cycle; a master CLI is asked `show proc` (all of
/// them at once) for the workers to pull through it.
async fn plan(sources: &[Source], settings: &CycleSettings) -> Plan {
    let mut plan = Plan::default();
    let mut listings = Vec::new();
    for source in sources {
        let job = |command: Command, suffix: &str, prefix: &str| Job {
            source: prefix.to_owned(),
            endpoint: source.endpoint.clone(),
            command,
            file: format!("{prefix}{suffix}"),
            retry_lines: Arc::new(RetryLines::each()),
        };
        match &source.endpoint {
            StatsEndpoint::Unix(_) | StatsEndpoint::Tcp { .. } => {
                for (command, suffix) in REQUESTS {
                    plan.jobs
                        .push(job(Command::plain(command), suffix, &source.name));
                }
            }
            StatsEndpoint::Http(_) => {
                plan.jobs
                    .push(job(Command::plain("show stat"), "_stat", &source.name));
            }
            StatsEndpoint::Master(path) => listings.push(async move {
                let listed = master::workers(path, &settings.policy, settings.buffer_limit).await;
                (source, path, listed)
            }),
        }
    }
    for (source, path, listed) in futures_util::future::join_all(listings).await {
        let selection = match listed {
            Ok(list) => master::select(&list.current, settings.master_worker_limit),
            Err(error) => {
                plan.failures.push(RequestFailure {
                    source: source.name.clone(),
                    error: error.into(),
                });
                continue;
            }
        };
        if let Some(text) = selection.notice() {
            plan.notices.push(WorkerNotice {
                master: source.name.clone(),
                text,
            });
        }
        let retry_lines = Arc::new(RetryLines::first_of_many());
        for picked in &selection.picked {
            let prefix = format!("{}{}", source.name, picked.suffix);
            for (command, suffix) in REQUESTS {
                plan.jobs.push(Job {
                    source: prefix.clone(),
                    endpoint: source.endpoint.clone(),
                    command: Command {
                        name: command,
                        worker: Some(picked.worker.pid),
                    },
                    file: format!("{prefix}{suffix}"),
                    retry_lines: Arc::clone(&retry_lines),
                });
            }
        }
        plan.masters.push(Pulled {
            source: source.name.clone(),
            master: path.clone(),
            workers: selection
                .picked
                .iter()
                .map(|picked| picked.worker)
                .collect(),
        });
    }
    plan
}

/// Runs `work` unless the deadline passes or a shutdown comes first; then
/// answers why it was cut short.
async fn bounded<T>(
    work: impl Future<Output = T>,
    deadline: &mut Pin<&mut impl Future<Output = ()>>,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<T, &'static str> {
    tokio::pin!(work);
    loop {
        tokio::select! {
            done = &mut work => return Ok(done),
            () = deadline.as_mut() => return Err("pull-timeout reached"),
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    return Err("shutting down");
                }
            }
        }
    }
}

/// Runs one cycle with timestamp `ts`. A `true` on `shutdown` cancels what is
/// pending; the assembled directory is then removed like any failed cycle.
pub async fn run(
    sources: Vec<Source>,
    settings: Arc<CycleSettings>,
    ts: u64,
    shutdown: watch::Receiver<bool>,
) -> Report {
    let mut notices = Vec::new();
    let outcome = pull(sources, settings, ts, shutdown, &mut notices).await;
    Report { outcome, notices }
}

async fn pull(
    sources: Vec<Source>,
    settings: Arc<CycleSettings>,
    ts: u64,
    mut shutdown: watch::Receiver<bool>,
    notices: &mut Vec<WorkerNotice>,
) -> CycleOutcome {
    if sources.is_empty() {
        return CycleOutcome::NoSources;
    }
    let tmp_dst_dir = settings.tmp_dst_dir.clone();
    let dir = match blocking(move || snapshot::prepare(&tmp_dst_dir, ts)).await {
        Ok(dir) => dir,
        Err(error) => return CycleOutcome::Io(error),
    };
    // Before the first request: tests/pull.rs times reloads against it.
    tracing::debug!(ts, sources = sources.len(), "pull cycle started");
    let limit = settings.pull_timeout;
    let deadline = async move {
        match limit {
            Some(limit) => tokio::time::sleep(limit).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);

    let Plan {
        jobs,
        masters,
        mut failures,
        notices: noticed,
    } = match bounded(plan(&sources, &settings), &mut deadline, &mut shutdown).await {
        Ok(plan) => plan,
        Err(reason) => {
            discard(dir).await;
            let failures = sources
                .into_iter()
                .filter(|source| matches!(source.endpoint, StatsEndpoint::Master(_)))
                .map(|source| RequestFailure {
                    source: source.name,
                    error: RequestError::Cancelled {
                        command: "show proc",
                        reason,
                    },
                })
                .collect();
            return CycleOutcome::Failed { failures };
        }
    };
    *notices = noticed;

    let writers = Arc::new(Semaphore::new(settings.writers));
    let mut tasks = JoinSet::new();
    let mut pending = BTreeSet::new();
    for job in jobs {
        pending.insert((job.file.clone(), job.source.clone(), job.command.name));
        tasks.spawn(request(
            job,
            Arc::clone(&settings),
            dir.clone(),
            Arc::clone(&writers),
        ));
    }
    let mut bytes = 0u64;
    let joined = bounded(
        join_all(&mut tasks, &mut pending, &mut failures, &mut bytes),
        &mut deadline,
        &mut shutdown,
    )
    .await;
    tasks.abort_all();
    let reason = match joined {
        Ok(()) => "request task failed",
        Err(reason) => reason,
    };
    failures.extend(
        pending
            .into_iter()
            .map(|(_, source, command)| RequestFailure {
                source,
                error: RequestError::Cancelled { command, reason },
            }),
    );

    if failures.is_empty() && !masters.is_empty() {
        let checks = masters.iter().map(|pulled| async {
            let checked = master::check_still_current(
                &pulled.master,
                &pulled.workers,
                &settings.policy,
                settings.buffer_limit,
            )
            .await;
            checked.err().map(|error| RequestFailure {
                source: pulled.source.clone(),
                error: error.into(),
            })
        });
        match bounded(
            futures_util::future::join_all(checks),
            &mut deadline,
            &mut shutdown,
        )
        .await
        {
            Ok(checked) => failures.extend(checked.into_iter().flatten()),
            Err(reason) => failures.extend(masters.iter().map(|pulled| RequestFailure {
                source: pulled.source.clone(),
                error: RequestError::Cancelled {
                    command: "show proc",
                    reason,
                },
            })),
        }
    }

    if failures.is_empty() {
        let dst_dir = settings.dst_dir.clone();
        let assembled = dir.clone();
        return match blocking(move || snapshot::publish(&assembled, &dst_dir)).await {
            Ok(published) => CycleOutcome::Published {
                dir: published,
                sources: sources.len(),
                bytes,
            },
            Err(error) => {
                discard(dir).await;
                CycleOutcome::Io(error)
            }
        };
    }
    discard(dir).await;
    CycleOutcome::Failed { failures }
}

/// Collects every request's outcome; what a panicked task left is still
/// in `pending` (file, source, command).
async fn join_all(
    tasks: &mut JoinSet<Done>,
    pending: &mut BTreeSet<(String, String, &'static str)>,
    failures: &mut Vec<RequestFailure>,
    bytes: &mut u64,
) {
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Done { job, result }) => {
                pending.remove(&(job.file, job.source.clone(), job.command.name));
                match result {
                    Ok(written) => *bytes += written,
                    Err(error) => failures.push(RequestFailure {
                        source: job.source,
                        error,
                    }),
                }
            }
            // A panicked request is a bug; it stays pending and is
            // reported with the others.
            Err(join_error) => {
                tracing::error!(error = %join_error, "pull request task failed");
            }
        }
    }
}

/// Bytes of a reply read from its socket before they are written out.
const WRITE_CHUNK: usize = 256 * 1024;

struct Done {
    job: Job,
    result: Result<u64, RequestError>,
}

async fn request(
    job: Job,
    settings: Arc<CycleSettings>,
    dir: PathBuf,
    writers: Arc<Semaphore>,
) -> Done {
    let command = job.command.name;
    let result = async {
        let mut reply = client::open(
            &job.endpoint,
            job.command,
            &settings.policy,
            settings.buffer_limit,
            &job.retry_lines,
        )
        .await?;
        // The reply goes to its file as it comes, a chunk at a time: a
        // whole `show stat` is megabytes per socket, and holding them all
        // for a cycle cost a fresh allocation, faulted in, every time.
        let path = Arc::new(dir.join(&job.file));
        let create = Arc::clone(&path);
        let mut file = blocking(move || snapshot::create_reply(&create)).await?;
        let mut buf = vec![0u8; WRITE_CHUNK];
        let mut size = 0u64;
        loop {
            let n = reply.read_chunk(&mut buf).await?;
            if n == 0 {
                break;
            }
            size += n as u64;
            // The semaphore bounds concurrent writes to `workers`; it is
            // never closed, so acquiring only fails if that invariant breaks.
            let _permit = writers.acquire().await.map_err(|e| RequestError::Task {
                command,
                detail: e.to_string(),
            })?;
            let at = Arc::clone(&path);
            (file, buf) = blocking(move || {
                snapshot::append_reply(&mut file, &at, buf.get(..n).unwrap_or_default())?;
                Ok((file, buf))
            })
            .await?;
        }
        Ok(size)
    }
    .await;
    Done { job, result }
}

async fn discard(dir: PathBuf) {
    let shown = dir.display().to_string();
    if let Err(error) = blocking(move || snapshot::discard(&dir)).await {
        tracing::error!(dir = %shown, error = %error, "cannot remove the unpublished snapshot");
    }
}

/// Runs blocking filesystem work on tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, SnapshotIoError> + Send + 'static,
) -> Result<T, SnapshotIoError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(join_error) => Err(SnapshotIoError::TaskFailed(join_error.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Retries;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::UnixListener;

    fn temp() -> tempfile::TempDir {
        tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"))
    }

    fn settings(root: &Path, pull_timeout: Option<Duration>) -> Arc<CycleSettings> {
        Arc::new(CycleSettings {
            policy: ConnectPolicy {
                timeout: Duration::from_millis(200),
                retries: Retries::Times(1),
                interval: Duration::from_millis(10),
            },
            buffer_limit: 1 << 20,
            tmp_dst_dir: root.join("incoming.tmp"),
            dst_dir: root.join("incoming"),
            pull_timeout,
            writers: 2,
            master_worker_limit: 256,
        })
    }

    /// A fake stats socket: replies "<command> from <name>" to each request,
    /// or never answers when `silent`.
    fn fake_socket(dir: &Path, name: &str, silent: bool) -> PathBuf {
        let path = dir.join(name);
        let listener = UnixListener::bind(&path).unwrap_or_else(|e| panic!("bind: {e}"));
        let name = name.to_string();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((mut stream, _)) = listener.accept().await {
                if silent {
                    held.push(stream);
                    continue;
                }
                let mut command = [0u8; 64];
                let n = stream.read(&mut command).await.unwrap_or(0);
                let command = String::from_utf8_lossy(&command[..n]).trim().to_string();
                let _ = stream
                    .write_all(format!("{command} from {name}\n").as_bytes())
                    .await;
            }
        });
        path
    }

    fn no_shutdown() -> watch::Receiver<bool> {
        let (sender, receiver) = watch::channel(false);
        std::mem::forget(sender);
        receiver
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    #[tokio::test]
    async fn every_socket_answered_publishes_one_complete_snapshot() {
        let root = temp();
        let sockets = root.path().join("sockets");
        std::fs::create_dir(&sockets).unwrap_or_else(|e| panic!("{e}"));
        fake_socket(&sockets, "a.sock", false);
        fake_socket(&sockets, "b.sock", false);
        std::fs::write(sockets.join("not-a-socket"), b"").unwrap_or_else(|e| panic!("{e}"));
        let sources = discover(Some(&sockets), &[]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(sources.len(), 2, "the plain file is ignored: {sources:?}");

        let outcome = run(
            sources,
            settings(root.path(), Some(Duration::from_secs(5))),
            42,
            no_shutdown(),
        )
        .await
        .outcome;
        let CycleOutcome::Published { dir, sources, .. } = outcome else {
            panic!("not published: {outcome:?}");
        };
        assert_eq!(sources, 2);
        assert_eq!(dir, root.path().join("incoming/42"));
        assert_eq!(
            listing(&dir),
            ["a.sock_info", "a.sock_stat", "b.sock_info", "b.sock_stat"]
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("b.sock_stat"))
                .ok()
                .as_deref(),
            Some("show stat from b.sock\n")
        );
        assert!(listing(&root.path().join("incoming.tmp")).is_empty());
    }

    #[tokio::test]
    async fn one_failing_socket_fails_the_cycle_and_leaves_nothing() {
        let root = temp();
        let sockets = root.path().join("sockets");
        std::fs::create_dir(&sockets).unwrap_or_else(|e| panic!("{e}"));
        fake_socket(&sockets, "good.sock", false);
        let mut sources = discover(Some(&sockets), &[]).unwrap_or_else(|e| panic!("{e}"));
        sources.push(Source {
            name: "gone.sock".into(),
            endpoint: StatsEndpoint::Unix(sockets.join("gone.sock")),
        });
        let outcome = run(sources, settings(root.path(), None), 43, no_shutdown())
            .await
            .outcome;
        let CycleOutcome::Failed { failures } = outcome else {
            panic!("not failed: {outcome:?}");
        };
        assert_eq!(failures.len(), 2, "{failures:?}");
        assert!(
            failures.iter().all(|f| f.source == "gone.sock"),
            "{failures:?}"
        );
        assert!(listing(&root.path().join("incoming")).is_empty());
        assert!(listing(&root.path().join("incoming.tmp")).is_empty());
    }

    /// A socket answering every command with `size` bytes of numbered lines.
    fn big_socket(dir: &Path, name: &str, size: usize) -> (PathBuf, Vec<u8>) {
        let path = dir.join(name);
        let listener = UnixListener::bind(&path).unwrap_or_else(|e| panic!("bind: {e}"));
        let mut reply = Vec::with_capacity(size + 32);
        let mut i = 0u64;
        while reply.len() < size {
            reply.extend_from_slice(format!("line {i}\n").as_bytes());
            i += 1;
        }
        reply.truncate(size);
        let body = reply.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let body = body.clone();
                tokio::spawn(async move {
                    let mut command = [0u8; 64];
                    let _ = stream.read(&mut command).await;
                    let _ = stream.write_all(&body).await;
                });
            }
        });
        (path, reply)
    }

    #[tokio::test]
    async fn replies_of_many_chunks_are_written_whole_and_oversized_ones_fail() {
        let root = temp();
        let sockets = root.path().join("sockets");
        std::fs::create_dir(&sockets).unwrap_or_else(|e| panic!("{e}"));
        // Under the 1 MiB limit of `settings`, over several write chunks.
        let (_, reply) = big_socket(&sockets, "big.sock", 3 * WRITE_CHUNK + 17);
        let sources = discover(Some(&sockets), &[]).unwrap_or_else(|e| panic!("{e}"));
        let outcome = run(sources, settings(root.path(), None), 44, no_shutdown())
            .await
            .outcome;
        assert!(
            matches!(outcome, CycleOutcome::Published { .. }),
            "{outcome:?}"
        );
        for file in ["big.sock_info", "big.sock_stat"] {
            let written = std::fs::read(root.path().join("incoming/44").join(file));
            assert!(written.ok().as_deref() == Some(&reply[..]), "{file}");
        }
        // Over the limit: the cycle fails and its partial files go with it.
        let too_big = root.path().join("too-big");
        std::fs::create_dir(&too_big).unwrap_or_else(|e| panic!("{e}"));
        big_socket(&too_big, "huge.sock", (1 << 20) + 1);
        let sources = discover(Some(&too_big), &[]).unwrap_or_else(|e| panic!("{e}"));
        let outcome = run(sources, settings(root.path(), None), 45, no_shutdown())
            .await
            .outcome;
        let CycleOutcome::Failed { failures } = outcome else {
            panic!("not failed: {outcome:?}");
        };
        assert_eq!(failures.len(), 2, "{failures:?}");
        assert!(
            failures
                .iter()
                .all(|f| f.error.to_string().contains("larger than buffer-limit")),
            "{failures:?}"
        );
        assert_eq!(listing(&root.path().join("incoming")), ["44"]);
        assert!(listing(&root.path().join("incoming.tmp")).is_empty());
    }

    #[tokio::test]
    async fn a_socket_that_never_answers_is_cancelled_by_pull_timeout() {
        let root = temp();
        let sockets = root.path().join("sockets");
        std::fs::create_dir(&sockets).unwrap_or_else(|e| panic!("{e}"));
        fake_socket(&sockets, "good.sock", false);
        fake_socket(&sockets, "mute.sock", true);
        let sources = discover(Some(&sockets), &[]).unwrap_or_else(|e| panic!("{e}"));
        let started = std::time::Instant::now();
        let outcome = run(
            sources,
            settings(root.path(), Some(Duration::from_millis(300))),
            44,
            no_shutdown(),
        )
        .await
        .outcome;
        assert!(started.elapsed() < Duration::from_secs(3));
        let CycleOutcome::Failed { failures } = outcome else {
            panic!("not failed: {outcome:?}");
        };
        assert!(
            failures.iter().all(|f| f.source == "mute.sock"
                && matches!(
                    f.error,
                    RequestError::Cancelled {
                        reason: "pull-timeout reached",
                        ..
                    }
                )),
            "{failures:?}"
        );
        assert!(listing(&root.path().join("incoming")).is_empty());
        assert!(listing(&root.path().join("incoming.tmp")).is_empty());
    }

    #[tokio::test]
    async fn shutdown_cancels_and_removes_the_partial_snapshot() {
        let root = temp();
        let sockets = root.path().join("sockets");
        std::fs::create_dir(&sockets).unwrap_or_else(|e| panic!("{e}"));
        fake_socket(&sockets, "mute.sock", true);
        let sources = discover(Some(&sockets), &[]).unwrap_or_else(|e| panic!("{e}"));
        let (stop, shutdown) = watch::channel(false);
        let cycle = tokio::spawn(run(sources, settings(root.path(), None), 45, shutdown));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let _ = stop.send(true);
        let outcome = tokio::time::timeout(Duration::from_secs(3), cycle).await;
        assert!(
            matches!(
                outcome,
                Ok(Ok(Report {
                    outcome: CycleOutcome::Failed { .. },
                    ..
                }))
            ),
            "{outcome:?}"
        );
        assert!(listing(&root.path().join("incoming.tmp")).is_empty());
    }

    #[tokio::test]
    async fn no_socket_is_a_failed_cycle_not_a_crash() {
        let root = temp();
        let outcome = run(Vec::new(), settings(root.path(), None), 46, no_shutdown())
            .await
            .outcome;
        assert!(matches!(outcome, CycleOutcome::NoSources), "{outcome:?}");
    }

    /// A fake master CLI: answers `show proc` with `listings` in turn (the
    /// last one from then on) once the client shut its side, and `@!<pid>
    /// <command>` with what a worker would start its reply with.
    fn fake_master(dir: &Path, listings: Vec<String>) -> PathBuf {
        let path = dir.join("master.sock");
        let listener = UnixListener::bind(&path).unwrap_or_else(|e| panic!("bind: {e}"));
        tokio::spawn(async move {
            let mut listed = 0;
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut command = String::new();
                let _ = stream.read_to_string(&mut command).await;
                let command = command.trim();
                let reply = if command == "show proc" {
                    let index = listed.min(listings.len() - 1);
                    listed += 1;
                    listings[index].clone()
                } else if command.ends_with("show info") {
                    format!("Name: HAProxy\nasked: {command}\n\n")
                } else if command.ends_with("show stat") {
                    format!("# pxname,svname,\nasked: {command}\n\n")
                } else {
                    "Unknown command.\n".to_string()
                };
                let _ = stream.write_all(reply.as_bytes()).await;
            }
        });
        path
    }

    const ONE_WORKER: &str = "#<PID>          <type>          <reloads>       <uptime>        <version>\n\
        1               master          0 [failed: 0]   0d00h00m01s     2.6.12\n\
        # workers\n\
        100             worker          0               0d00h00m01s     2.6.12\n\
        # programs\n";

    const RELOADED: &str = "#<PID>          <type>          <reloads>       <uptime>        <version>\n\
        1               master          1 [failed: 0]   0d00h00m02s     2.6.12\n\
        # workers\n\
        200             worker          0               0d00h00m00s     2.6.12\n\
        # old workers\n\
        100             worker          1               0d00h00m02s     2.6.12\n\
        # programs\n";

    /// One cycle `ts` pulling a [`fake_master`] in `root`.
    async fn pull_master(root: &Path, listings: Vec<&'static str>, ts: u64) -> CycleOutcome {
        let master = fake_master(root, listings.into_iter().map(String::from).collect());
        let sources =
            discover(None, &[StatsEndpoint::Master(master)]).unwrap_or_else(|e| panic!("{e}"));
        run(sources, settings(root, None), ts, no_shutdown())
            .await
            .outcome
    }

    #[tokio::test]
    async fn every_current_worker_of_a_master_is_pulled_through_it_by_relative_number() {
        let root = temp();
        let proc_list = include_str!("../../tests/fixtures/show_proc/2.0.txt");
        let outcome = pull_master(root.path(), vec![proc_list], 50).await;
        let CycleOutcome::Published { dir, .. } = outcome else {
            panic!("not published: {outcome:?}");
        };
        assert_eq!(
            listing(&dir),
            [
                "master.sock@1_info",
                "master.sock@1_stat",
                "master.sock@2_info",
                "master.sock@2_stat"
            ]
        );
        // Through the master, to each worker by PID; the old one (1233) never.
        let second = std::fs::read_to_string(dir.join("master.sock@2_info")).unwrap_or_default();
        assert_eq!(second, "Name: HAProxy\nasked: @!1272 show info\n\n");
    }

    #[tokio::test]
    async fn a_worker_made_old_by_a_reload_during_the_pull_fails_the_cycle() {
        let root = temp();
        let outcome = pull_master(root.path(), vec![ONE_WORKER, RELOADED], 51).await;
        let CycleOutcome::Failed { failures } = outcome else {
            panic!("not failed: {outcome:?}");
        };
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert_eq!(failures[0].source, "master.sock");
        assert!(
            failures[0]
                .error
                .to_string()
                .contains("worker(s) 100 no longer current"),
            "{failures:?}"
        );
        assert!(listing(&root.path().join("incoming")).is_empty());
        assert!(listing(&root.path().join("incoming.tmp")).is_empty());
    }

    #[test]
    fn a_failed_cycle_names_a_few_sources_and_errors_and_counts_the_rest() {
        let failure = |source: &str| RequestFailure {
            source: source.to_owned(),
            error: RequestError::Cancelled {
                command: "show stat",
                reason: "pull-timeout reached",
            },
        };
        let few = FailureSummary::of(&[failure("a.sock"), failure("a.sock"), failure("b.sock")]);
        assert_eq!(few.sources, "a.sock,b.sock");
        assert_eq!(few.errors.matches("'show stat' cancelled").count(), 3);
        let many: Vec<RequestFailure> = (1..=5_000)
            .flat_map(|n| [failure(&format!("m@{n}")), failure(&format!("m@{n}"))])
            .collect();
        let summary = FailureSummary::of(&many);
        assert_eq!(
            summary.sources,
            "m@1,m@2,m@3,m@4,m@5,m@6,m@7,m@8,+4992 more"
        );
        assert!(
            summary.errors.starts_with("m@1: 'show stat' cancelled")
                && summary
                    .errors
                    .ends_with("; and 9992 more failed request(s)"),
            "{}",
            summary.errors
        );
        assert!(summary.errors.len() < 1_000, "{}", summary.errors);
    }

    #[tokio::test]
    async fn a_master_over_master_worker_limit_gets_the_limit_pulled_and_a_notice() {
        let root = temp();
        let proc_list = (1..=10).fold(
            String::from("#<PID> <type> <relative PID> <reloads>\n1 master 0 0\n# workers\n"),
            |list, n| list + &format!("{} worker {n} 0\n", 100 + n),
        );
        let master = fake_master(root.path(), vec![proc_list]);
        let sources =
            discover(None, &[StatsEndpoint::Master(master)]).unwrap_or_else(|e| panic!("{e}"));
        let mut limited = (*settings(root.path(), None)).clone();
        limited.master_worker_limit = 3;
        let report = run(sources, Arc::new(limited), 52, no_shutdown()).await;
        let CycleOutcome::Published { dir, .. } = report.outcome else {
            panic!("not published: {:?}", report.outcome);
        };
        assert_eq!(listing(&dir).len(), 6, "{:?}", listing(&dir));
        assert_eq!(report.notices.len(), 1, "{:?}", report.notices);
        assert_eq!(report.notices[0].master, "master.sock");
        assert!(
            report.notices[0].text.contains("10 current workers listed"),
            "{:?}",
            report.notices
        );
    }

    #[test]
    fn names_come_from_socket_files_and_tcp_addresses() {
        let servers = [
            StatsEndpoint::Unix("/run/a/admin.sock".into()),
            StatsEndpoint::Unix("/run/b/admin.sock".into()),
            StatsEndpoint::Tcp {
                host: "127.0.0.1".into(),
                port: 5555,
            },
        ];
        let sources = discover(None, &servers).unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<&str> = sources.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["admin.sock", "admin.sock#2", "127.0.0.1:5555"]);
    }

    #[test]
    fn an_unreadable_socket_dir_is_an_error_naming_it() {
        let error = discover(Some(Path::new("/nonexistent/sockets")), &[]).err();
        assert!(
            error
                .map(|e| e.to_string())
                .unwrap_or_default()
                .contains("/nonexistent/sockets")
        );
    }
}

//! A fake HAProxy master CLI on a UNIX socket, for what a real one never
//! says: hostile bytes, thousands of workers, one relative number claimed
//! by several workers. It speaks the CLI as the master does to a
//! non-interactive client: it reads the command until the client shuts its
//! side, answers, and closes. Requests to a worker (`@!<pid> show info`)
//! are answered by the same function.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// Threads answering connections: a few, as the accepted connections wait
/// in a queue (thousands of threads would slow everything else down).
const HANDLERS: usize = 8;

/// What the fake master answers to one command (`show proc`, `@!12 show stat`).
pub type Answer = dyn Fn(&str) -> Vec<u8> + Send + Sync;

/// A running fake master; stops accepting on drop.
pub struct FakeMaster {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    asked: Arc<AtomicU64>,
    accept: Option<JoinHandle<()>>,
}

impl FakeMaster {
    /// Listens on `dir/name`, answering every command with `answer`.
    pub fn start(
        dir: &Path,
        name: &str,
        answer: impl Fn(&str) -> Vec<u8> + Send + Sync + 'static,
    ) -> FakeMaster {
        let path = dir.join(name);
        let listener = UnixListener::bind(&path)
            .unwrap_or_else(|e| panic!("fake master: bind {}: {e}", path.display()));
        let stop = Arc::new(AtomicBool::new(false));
        let asked = Arc::new(AtomicU64::new(0));
        let answer: Arc<Answer> = Arc::new(answer);
        let (queue, accepted) = mpsc::channel::<UnixStream>();
        let accepted = Arc::new(Mutex::new(accepted));
        for _ in 0..HANDLERS {
            let accepted = Arc::clone(&accepted);
            let answer = Arc::clone(&answer);
            let asked = Arc::clone(&asked);
            thread::spawn(move || {
                loop {
                    let next = accepted.lock().map(|queue| queue.recv());
                    let Ok(Ok(stream)) = next else { return };
                    asked.fetch_add(1, Ordering::SeqCst);
                    serve(stream, &*answer);
                }
            });
        }
        let accept = {
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    if let Ok(stream) = stream
                        && queue.send(stream).is_err()
                    {
                        return;
                    }
                }
            })
        };
        FakeMaster {
            path,
            stop,
            asked,
            accept: Some(accept),
        }
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Commands answered so far.
    pub fn asked(&self) -> u64 {
        self.asked.load(Ordering::SeqCst)
    }
}

impl Drop for FakeMaster {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept(); a socket whose file a test removed
        // cannot be woken, its thread is left to the end of the process.
        if UnixStream::connect(&self.path).is_ok()
            && let Some(accept) = self.accept.take()
        {
            let _ = accept.join();
        }
    }
}

fn serve(mut stream: UnixStream, answer: &Answer) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let mut command = String::new();
    if stream.read_to_string(&mut command).is_err() {
        return;
    }
    let _ = stream.write_all(&answer(command.trim()));
}

/// A `show proc` reply in the 1.9–2.4 layout (with a `<relative PID>`
/// column) listing `workers` as (PID, relative number).
pub fn show_proc(workers: &[(u32, u32)]) -> String {
    let mut reply = String::from(
        "#<PID>          <type>          <relative PID>  <reloads>       <uptime>        <version>\n\
         1               master          0               0               0d00h00m01s     2.4.22\n\
         # workers\n",
    );
    for (pid, relative) in workers {
        reply.push_str(&format!(
            "{pid:<16}worker          {relative:<16}0               0d00h00m01s     2.4.22\n"
        ));
    }
    reply.push_str("# programs\n\n");
    reply
}

/// The PID a command goes to (`@!<pid> show stat` → 12), if any.
pub fn target_pid(command: &str) -> Option<u32> {
    command.strip_prefix("@!")?.split(' ').next()?.parse().ok()
}

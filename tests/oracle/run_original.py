#!/usr/bin/env python3
"""Run the original haproxystats-process (0.5.1) once over snapshot directories
and print every Graphite line it produced, black-box.

    run_original.py --venv VENV --config CONF --work WORK SNAPSHOT_DIR...

The original is a daemon: it processes the directories found in its src-dir at
start (and later ones via inotify), sends lines to Graphite, writes them to
`[local-store] dir/<timestamp>/stats` when that section exists, and removes each
directory it processed. This driver

1. copies every SNAPSHOT_DIR into WORK/incoming/ (the inputs are never touched;
   their names, the timestamps, must be distinct);
2. listens on a free 127.0.0.1 port and discards whatever arrives there, so the
   original's Graphite handler has a peer and never stalls in its retry loop;
3. starts VENV/bin/haproxystats-process -f CONF -d WORK/conf.d, where
   conf.d/zz-driver.conf only adds what the driver needs: [process] src-dir,
   workers, liveness-check-interval, [graphite] server/port, [local-store] dir;
4. waits until every copied directory is gone (processed), then stops it with
   SIGTERM (its graceful shutdown) and waits for it;
5. prints the local-store files of every snapshot to stdout, in argument order.

Fails (exit 1, the reason and the original's log on stderr) when the original
exits early, a worker dies, its log has ERROR or CRITICAL lines before the
shutdown, or it does not finish within --timeout seconds. Standard library only.
"""
import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time


def fail(message, log_path=None):
    sys.stderr.write("run_original: %s\n" % message)
    if log_path and os.path.exists(log_path):
        with open(log_path, errors="replace") as log:
            text = log.read()
        sys.stderr.write("--- log of haproxystats-process (%s) ---\n%s\n--- end of log ---\n"
                         % (log_path, text[-20000:]))
    sys.exit(1)


def discard_server():
    """A TCP listener that accepts any number of connections and drops their bytes."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)

    def drain(conn):
        with conn:
            while conn.recv(1 << 16):
                pass

    def accept():
        while True:
            conn, _ = listener.accept()
            threading.Thread(target=drain, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return listener.getsockname()[1]


def pending(incoming):
    return [e for e in os.listdir(incoming) if os.path.isdir(os.path.join(incoming, e))]


def stop(proc, grace):
    """SIGTERM the original; SIGKILL its process group if it does not leave."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return False
    return True


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", required=True)
    parser.add_argument("--config", required=True, help="haproxystats.conf to test")
    parser.add_argument("--work", required=True, help="empty or missing scratch directory")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("snapshots", nargs="+")
    args = parser.parse_args()

    program = os.path.join(args.venv, "bin", "haproxystats-process")
    if not os.access(program, os.X_OK):
        fail("%s not found: run .ci/install-oracle.sh" % program)
    names = [os.path.basename(os.path.normpath(s)) for s in args.snapshots]
    if len(set(names)) != len(names):
        fail("snapshot directory names (timestamps) must be distinct: %s" % names)

    work = os.path.abspath(args.work)
    incoming = os.path.join(work, "incoming")
    store = os.path.join(work, "local-store")
    confd = os.path.join(work, "conf.d")
    for d in (incoming, store, confd):
        os.makedirs(d, exist_ok=True)
    for src, name in zip(args.snapshots, names):
        shutil.copytree(src, os.path.join(incoming, name))

    port = discard_server()
    with open(os.path.join(confd, "zz-driver.conf"), "w") as conf:
        conf.write("[process]\nsrc-dir = %s\nworkers = %d\nliveness-check-interval = 1\n\n"
                   "[graphite]\nserver = 127.0.0.1\nport = %d\n\n"
                   "[local-store]\ndir = %s\n" % (incoming, args.workers, port, store))

    log_path = os.path.join(work, "haproxystats-process.log")
    with open(log_path, "w") as log:
        proc = subprocess.Popen([program, "-f", args.config, "-d", confd],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True)
    deadline = time.monotonic() + args.timeout
    try:
        while pending(incoming):
            if proc.poll() is not None:
                fail("haproxystats-process exited with %s before processing %s"
                     % (proc.returncode, sorted(pending(incoming))), log_path)
            if time.monotonic() > deadline:
                fail("haproxystats-process did not process %s within %ss"
                     % (sorted(pending(incoming)), args.timeout), log_path)
            time.sleep(0.05)
    finally:
        clean = stop(proc, 20)
    if not clean:
        fail("haproxystats-process did not exit within 20s of SIGTERM", log_path)
    if proc.returncode != 0:
        fail("haproxystats-process exited with %s after SIGTERM" % proc.returncode, log_path)
    # Up to the SIGTERM only: once shutdown starts, the liveness checker may
    # see a worker that already took its STOP and report it dead.
    bad = []
    with open(log_path, errors="replace") as log:
        for line in log:
            if "[shutdown" in line:
                break
            if " ERROR " in line or " CRITICAL " in line or "Traceback" in line:
                bad.append(line)
    if bad:
        fail("haproxystats-process logged errors:\n%s" % "".join(bad), log_path)

    out = sys.stdout
    for name in names:
        path = os.path.join(store, name, "stats")
        if not os.path.exists(path):
            fail("no local-store output %s" % path, log_path)
        with open(path) as stats:
            out.write(stats.read())
    out.flush()


if __name__ == "__main__":
    main()

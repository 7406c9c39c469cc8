//! What Linux knows about one TCP connection that carbon never tells us:
//! how much of what we wrote the peer has not acknowledged yet
//! (`SIOCOUTQ`), the round-trip estimate and whether the connection is
//! still established (`TCP_INFO`). Read by the Graphite sink to confirm
//! delivery ([`super::confirm`]).

use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

/// `TCP_ESTABLISHED` in `tcpi_state` (include/net/tcp_states.h).
const TCP_ESTABLISHED: u8 = 1;

/// One look at a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpState {
    /// Bytes written and not yet acknowledged by the peer.
    pub unacked: u64,
    /// Smoothed round-trip time.
    pub rtt: Option<Duration>,
    /// `false` once the peer closed or reset the connection.
    pub established: bool,
    /// The receive window the peer advertised last (Linux ≥ 5.4).
    pub window: Option<u64>,
}

/// Reads the state of `socket`.
pub fn read(socket: &impl AsRawFd) -> io::Result<TcpState> {
    let fd = socket.as_raw_fd();
    let mut unacked: libc::c_int = 0;
    // SAFETY: SIOCOUTQ (= TIOCOUTQ) writes one int through the pointer,
    // which points at a live c_int; fd is a socket owned by the caller.
    let rc = unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut unacked) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: tcp_info is plain old data; all-zero is a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into `info` and updates
    // `len`; both point at live values of the right size.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            std::ptr::from_mut(&mut info).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(TcpState {
        unacked: u64::try_from(unacked).unwrap_or(0),
        rtt: (info.tcpi_rtt > 0).then(|| Duration::from_micros(u64::from(info.tcpi_rtt))),
        established: info.tcpi_state == TCP_ESTABLISHED,
        window: (len as usize
            >= std::mem::offset_of!(libc::tcp_info, tcpi_snd_wnd) + std::mem::size_of::<u32>())
        .then_some(u64::from(info.tcpi_snd_wnd)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn a_peer_that_reads_acknowledges_everything_and_a_closed_one_is_seen() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let mut client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (mut server, _) = listener.accept().expect("accept");
        client.write_all(&[b'x'; 10_000]).expect("write");
        let mut got = vec![0; 10_000];
        server.read_exact(&mut got).expect("read");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let mut state = read(&client).expect("state");
        while state.unacked > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
            state = read(&client).expect("state");
        }
        assert_eq!(state.unacked, 0);
        assert!(state.established);
        drop(server);
        while state.established && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
            state = read(&client).expect("state");
        }
        assert!(!state.established, "the peer's close is seen");
    }

    #[test]
    fn a_peer_that_never_reads_leaves_bytes_unacknowledged() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (_server, _) = listener.accept().expect("accept");
        client.set_nonblocking(true).expect("nonblocking");
        let mut written = 0u64;
        let chunk = vec![b'x'; 64 * 1024];
        // Until the send buffer is full too.
        while let Ok(n) = (&client).write(&chunk) {
            written += n as u64;
        }
        let state = read(&client).expect("state");
        assert!(
            state.unacked > 0 && state.unacked <= written,
            "{state:?} of {written}"
        );
    }
}

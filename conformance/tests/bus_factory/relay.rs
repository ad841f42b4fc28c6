//! [`BusRelay`]: a namespace's own way to the bus, which a test can cut.
//!
//! The keyring is one for the whole run, so stopping it or locking its collection would
//! hit every case running at the same time. Instead each namespace's handles reach the
//! bus through their own Unix socket, relayed byte for byte to the real one. Cutting the
//! relay closes its connections and refuses new ones: to those handles the bus is really
//! gone (their connection breaks, a reconnect fails), while the keyring, its daemon and
//! every other namespace go on. The relay copies bytes and understands nothing of D-Bus;
//! the authentication and every message are the real daemon's.

use std::{
    io,
    net::Shutdown,
    os::unix::net::{UnixListener, UnixStream},
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread,
};

/// A relay from a socket of its own to the bus socket at `target`.
#[derive(Debug)]
pub struct BusRelay {
    socket: PathBuf,
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    cut: AtomicBool,
    stopped: AtomicBool,
    /// Both ends of every relayed connection, to close them when cut.
    streams: Mutex<Vec<UnixStream>>,
}

impl Shared {
    fn close_all(&self) {
        let mut streams = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        for stream in streams.drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

impl BusRelay {
    /// Listens on `socket` and relays each connection to the bus socket `target`.
    pub fn start(socket: PathBuf, target: PathBuf) -> io::Result<Self> {
        let listener = UnixListener::bind(&socket)?;
        let shared = Arc::new(Shared::default());
        let accepting = Arc::clone(&shared);
        thread::Builder::new()
            .name("bus-relay".into())
            .spawn(move || accept(&listener, &target, &accepting))?;
        Ok(BusRelay { socket, shared })
    }

    /// The D-Bus address of the relay.
    pub fn address(&self) -> String {
        format!("unix:path={}", self.socket.display())
    }

    /// Closes every relayed connection and refuses new ones until [`restore`](Self::restore).
    pub fn cut(&self) {
        self.shared.cut.store(true, Ordering::SeqCst);
        self.shared.close_all();
    }

    /// Relays new connections again.
    pub fn restore(&self) {
        self.shared.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for BusRelay {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        self.shared.close_all();
        // Wakes the accept loop, which then sees `stopped`.
        let _ = UnixStream::connect(&self.socket);
        let _ = std::fs::remove_file(&self.socket);
    }
}

fn accept(listener: &UnixListener, target: &Path, shared: &Shared) {
    for incoming in listener.incoming() {
        if shared.stopped.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = incoming else { continue };
        if shared.cut.load(Ordering::SeqCst) {
            // Dropped at once: the handle finds no bus here.
            continue;
        }
        let Ok(bus) = UnixStream::connect(target) else {
            continue;
        };
        if relay(client, bus, shared).is_err() {
            continue;
        }
    }
}

/// Copies both ways on two threads, and registers both ends for `cut`.
fn relay(client: UnixStream, bus: UnixStream, shared: &Shared) -> io::Result<()> {
    {
        let mut streams = shared.streams.lock().unwrap_or_else(|p| p.into_inner());
        streams.push(client.try_clone()?);
        streams.push(bus.try_clone()?);
    }
    for (mut from, mut to) in [(client.try_clone()?, bus.try_clone()?), (bus, client)] {
        thread::Builder::new()
            .name("bus-relay-copy".into())
            .spawn(move || {
                let _ = io::copy(&mut from, &mut to);
                let _ = to.shutdown(Shutdown::Both);
                let _ = from.shutdown(Shutdown::Both);
            })?;
    }
    Ok(())
}

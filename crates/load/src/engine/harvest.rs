//! Answers read when the generator wakes anyway, not when they arrive.
//!
//! In the open model the generator thread sleeps on its arrival timer
//! between batches. With its connections in the runtime's epoll, every
//! answer that comes back wakes the thread again (measured at 20,000/s:
//! 0.65 context switches and 0.58 `epoll_wait` calls per request, most of
//! the generator's CPU), although nothing needs doing until the next batch
//! is due. A [`Harvester`] keeps the open model's plain HTTP/1.1
//! connections out of the runtime's epoll, in one of its own that nobody
//! sleeps on: the dispatcher polls it (a zero-timeout `epoll_wait`) each
//! time it wakes, wakes the tasks whose connections have bytes, and wakes
//! on its own only when answers are awaited and no batch is due within
//! [`HARVEST_INTERVAL`].
//!
//! Reading an answer later must not make it look slower: the sockets ask
//! the kernel for receive timestamps (`SO_TIMESTAMPNS`), and a
//! [`TickedStream`] remembers when the last bytes it read *arrived*, which
//! is when the request's latency ends. The price of the late read is
//! paid only in how long a connection stays busy, at most one harvest
//! interval more.
//!
//! TLS and HTTP/2 connections stay on the runtime's epoll: their
//! handshakes and frames need prompt round trips.

use std::time::{Duration, Instant, SystemTime};

/// With answers awaited and no batch due sooner, the dispatcher wakes to
/// read them this often. A connection stays busy at most this much longer
/// than its answer took; the answer's latency is unaffected.
pub(crate) const HARVEST_INTERVAL: Duration = Duration::from_millis(1);

/// A receive timestamp older than this is taken for a clock step, and the
/// read's own time is used instead.
const MAX_STAMP_AGE: Duration = Duration::from_secs(10);

/// The monotonic time at which a packet stamped `stamp` (the kernel's
/// wall clock) arrived, at the latest `now`.
fn arrival(stamp: SystemTime, now: Instant, wall_now: SystemTime) -> Instant {
    match wall_now.duration_since(stamp) {
        Ok(age) if age < MAX_STAMP_AGE => now.checked_sub(age).unwrap_or(now),
        _ => now,
    }
}

#[cfg(target_os = "linux")]
pub(crate) use linux::{Eager, Harvester, TickedStream};

#[cfg(target_os = "linux")]
mod linux {
    use super::arrival;
    use rustix::event::epoll;
    use std::io::{self, Write};
    use std::mem::MaybeUninit;
    use std::net::TcpStream;
    use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
    use std::pin::Pin;
    use std::sync::{Arc, Mutex, PoisonError};
    use std::task::{Context, Poll, Waker};
    use std::time::{Duration, Instant, SystemTime};
    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

    /// One generator thread's private epoll and the tasks waiting on it.
    pub(crate) struct Harvester {
        epoll: OwnedFd,
        waiting: Mutex<Waiting>,
        /// Wakes a dispatcher asleep for longer than a harvest interval
        /// when the first task starts waiting.
        first_waiter: tokio::sync::Notify,
    }

    /// What the harvests found, by file descriptor (a thread holds a few
    /// dozen sockets).
    #[derive(Default)]
    struct Waiting {
        by_fd: Vec<Entry>,
        /// Entries with a waker.
        count: usize,
        /// The dispatcher sleeps past the next harvest interval.
        dispatcher_away: bool,
    }

    #[derive(Default, Clone)]
    struct Entry {
        waker: Option<Waker>,
        /// A harvest found the socket ready since its task last looked.
        ready: bool,
    }

    impl Harvester {
        pub(crate) fn new() -> io::Result<Self> {
            Ok(Self {
                epoll: epoll::create(epoll::CreateFlags::CLOEXEC)?,
                waiting: Mutex::default(),
                first_waiter: tokio::sync::Notify::new(),
            })
        }

        /// Returns when a task starts waiting on a connection; for a
        /// dispatcher about to sleep longer than a harvest interval, so
        /// that an answer is not left unread until its next arrival.
        pub(crate) async fn first_waiter(&self) {
            let notified = self.first_waiter.notified();
            {
                let mut waiting = self.lock();
                if waiting.count > 0 {
                    return;
                }
                waiting.dispatcher_away = true;
            }
            notified.await;
        }

        /// Some task waits for bytes (or room) on a connection.
        pub(crate) fn waiting(&self) -> bool {
            self.lock().count > 0
        }

        /// Marks the connections that became readable or writable since
        /// the last harvest, and wakes the tasks waiting on them; returns
        /// how many it woke. Never blocks.
        pub(crate) fn harvest(&self) -> io::Result<usize> {
            let zero = rustix::time::Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            let mut woken = 0;
            loop {
                const BATCH: usize = 64;
                let mut events = [MaybeUninit::<epoll::Event>::uninit(); BATCH];
                let (ready, _) = epoll::wait(&self.epoll, &mut events, Some(&zero))?;
                let full = ready.len() == BATCH;
                let mut waiting = self.lock();
                for event in ready.iter() {
                    let Some(entry) = usize::try_from(event.data.u64())
                        .ok()
                        .and_then(|fd| waiting.by_fd.get_mut(fd))
                    else {
                        continue;
                    };
                    entry.ready = true;
                    if let Some(waker) = entry.waker.take() {
                        waiting.count -= 1;
                        woken += 1;
                        // Same thread: this only queues the task.
                        waker.wake();
                    }
                }
                if !full {
                    return Ok(woken);
                }
            }
        }

        /// Returns when a harvest would find something. For a thread that
        /// has fallen behind (arrivals waiting for a connection): then each
        /// answer frees a connection that a queued arrival needs at once,
        /// so the private epoll itself joins the runtime's (`eager`) until
        /// the queue is gone; reading only at wake-ups would let a
        /// connection serve one request per wake-up.
        pub(crate) async fn ready(&self, eager: &mut Eager) {
            let registered = match &mut eager.0 {
                Some(fd) => fd,
                empty @ None => {
                    // SAFETY: the epoll descriptor is this harvester's,
                    // open for its whole life; the dispatcher holding
                    // `eager` borrows the harvester, so the registration
                    // ends before the descriptor can close.
                    #[allow(unsafe_code)]
                    let registered = unsafe {
                        tokio::io::unix::AsyncFd::register_with_interest(
                            self.epoll.as_raw_fd(),
                            tokio::io::Interest::READABLE,
                        )
                    };
                    match registered {
                        Ok(fd) => empty.insert(fd),
                        // The dispatcher's timer still bounds the wait.
                        Err(_) => return std::future::pending().await,
                    }
                }
            };
            match registered.readable().await {
                Ok(mut guard) => guard.clear_ready(),
                Err(_) => std::future::pending().await,
            }
        }

        fn register(&self, socket: &TcpStream) -> io::Result<()> {
            let fd = socket.as_raw_fd();
            epoll::add(
                &self.epoll,
                socket.as_fd(),
                epoll::EventData::new_u64(u64::try_from(fd).unwrap_or(u64::MAX)),
                epoll::EventFlags::IN
                    | epoll::EventFlags::OUT
                    | epoll::EventFlags::RDHUP
                    | epoll::EventFlags::ET,
            )?;
            Ok(())
        }

        /// Whether a harvest found `fd` ready since the last call.
        fn take_ready(&self, fd: RawFd) -> bool {
            let mut waiting = self.lock();
            usize::try_from(fd)
                .ok()
                .and_then(|fd| waiting.by_fd.get_mut(fd))
                .is_some_and(|entry| std::mem::take(&mut entry.ready))
        }

        /// Wakes the task behind `waker` at the next harvest that finds
        /// `fd` ready.
        fn wait(&self, fd: RawFd, waker: &Waker) {
            let Ok(fd) = usize::try_from(fd) else {
                // Not a descriptor: wake at once rather than never.
                waker.wake_by_ref();
                return;
            };
            let mut waiting = self.lock();
            if waiting.by_fd.len() <= fd {
                waiting.by_fd.resize(fd + 1, Entry::default());
            }
            match &mut waiting.by_fd[fd].waker {
                Some(existing) => existing.clone_from(waker),
                empty @ None => {
                    *empty = Some(waker.clone());
                    waiting.count += 1;
                    if std::mem::take(&mut waiting.dispatcher_away) {
                        self.first_waiter.notify_one();
                    }
                }
            }
        }

        /// The socket on `fd` is closing (the kernel drops it from the
        /// epoll with its last descriptor).
        fn forget(&self, fd: RawFd) {
            let mut waiting = self.lock();
            let Some(entry) = usize::try_from(fd)
                .ok()
                .and_then(|fd| waiting.by_fd.get_mut(fd))
            else {
                return;
            };
            let had_waker = entry.waker.take().is_some();
            entry.ready = false;
            if had_waker {
                waiting.count -= 1;
            }
        }

        fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
            self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
        }
    }

    /// The private epoll's place in the runtime's, while the thread is
    /// behind ([`Harvester::ready`]).
    #[derive(Default)]
    pub(crate) struct Eager(Option<tokio::io::unix::AsyncFd<RawFd>>);

    impl Eager {
        /// Back to reading at wake-ups only.
        pub(crate) fn off(&mut self) {
            self.0 = None;
        }
    }

    /// A plain TCP connection read and written only when its
    /// [`Harvester`] says it is ready, remembering when its last bytes
    /// arrived.
    pub(crate) struct TickedStream {
        socket: TcpStream,
        harvester: Arc<Harvester>,
        /// Bytes may be waiting: false once a read came back short (the
        /// socket drained), until a harvest finds it ready again. Saves
        /// the read that would fail right after each request is sent.
        maybe_readable: bool,
        received_at: Option<Instant>,
    }

    impl TickedStream {
        /// Takes `stream` off the runtime's epoll and onto `harvester`'s.
        pub(crate) fn new(
            stream: tokio::net::TcpStream,
            harvester: Arc<Harvester>,
        ) -> io::Result<Self> {
            let socket = stream.into_std()?;
            socket.set_nonblocking(true)?;
            // Without timestamps answers still count, timed at the read.
            let _ = enable_receive_timestamps(&socket);
            harvester.register(&socket)?;
            Ok(Self {
                socket,
                harvester,
                maybe_readable: true,
                received_at: None,
            })
        }

        /// When the bytes of the last read arrived, if anything was read
        /// since the last call.
        pub(crate) fn take_received_at(&mut self) -> Option<Instant> {
            self.received_at.take()
        }
    }

    impl Drop for TickedStream {
        fn drop(&mut self) {
            self.harvester.forget(self.socket.as_raw_fd());
        }
    }

    impl AsyncRead for TickedStream {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let this = self.get_mut();
            let fd = this.socket.as_raw_fd();
            if !this.maybe_readable && !this.harvester.take_ready(fd) {
                this.harvester.wait(fd, cx.waker());
                return Poll::Pending;
            }
            loop {
                // SAFETY: `receive` only writes into the slice, and the
                // bytes it reports written are marked initialized below.
                #[allow(unsafe_code)]
                let unfilled = unsafe { buf.unfilled_mut() };
                let room = unfilled.len();
                match receive(fd, unfilled) {
                    Ok((n, stamp)) => {
                        // A short read drained the socket; an empty one
                        // (the end of the stream) stays readable.
                        this.maybe_readable = n == 0 || n == room;
                        // SAFETY: the kernel wrote `n` bytes at the start
                        // of the unfilled part.
                        #[allow(unsafe_code)]
                        unsafe {
                            buf.assume_init(n);
                        }
                        buf.advance(n);
                        if n > 0 {
                            let now = Instant::now();
                            this.received_at = Some(match stamp {
                                Some(stamp) => arrival(stamp, now, SystemTime::now()),
                                None => now,
                            });
                        }
                        return Poll::Ready(Ok(()));
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        this.maybe_readable = false;
                        this.harvester.wait(fd, cx.waker());
                        return Poll::Pending;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
        }
    }

    impl AsyncWrite for TickedStream {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            loop {
                match (&this.socket).write(buf) {
                    Ok(n) => return Poll::Ready(Ok(n)),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        this.harvester.wait(this.socket.as_raw_fd(), cx.waker());
                        return Poll::Pending;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
        }

        fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(self.socket.shutdown(std::net::Shutdown::Write))
        }
    }

    fn enable_receive_timestamps(socket: &TcpStream) -> io::Result<()> {
        let on: libc::c_int = 1;
        // SAFETY: a valid socket, and an option value of the size given.
        #[allow(unsafe_code)]
        let result = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_TIMESTAMPNS,
                (&raw const on).cast(),
                std::mem::size_of_val(&on) as libc::socklen_t,
            )
        };
        if result == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// One non-blocking `recvmsg`: the bytes read, and the kernel's
    /// receive timestamp of the last of them when it gave one.
    fn receive(fd: RawFd, into: &mut [MaybeUninit<u8>]) -> io::Result<(usize, Option<SystemTime>)> {
        let mut iov = libc::iovec {
            iov_base: into.as_mut_ptr().cast(),
            iov_len: into.len(),
        };
        // Room for one `timespec` message, aligned for `cmsghdr`.
        let mut control = [0u64; 8];
        // SAFETY: an all-zero `msghdr` is a valid empty one.
        #[allow(unsafe_code)]
        let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
        message.msg_iov = &raw mut iov;
        message.msg_iovlen = 1;
        message.msg_control = control.as_mut_ptr().cast();
        message.msg_controllen = std::mem::size_of_val(&control) as _;
        // SAFETY: `message` points at a buffer and a control area that
        // outlive the call, with their true lengths.
        #[allow(unsafe_code)]
        let n = unsafe { libc::recvmsg(fd, &raw mut message, libc::MSG_DONTWAIT) };
        let Ok(n) = usize::try_from(n) else {
            return Err(io::Error::last_os_error());
        };
        let mut stamp = None;
        // SAFETY: the kernel filled `message`'s control area (its length
        // updated to what it wrote); the CMSG macros walk only within it,
        // and the data of an SCM_TIMESTAMPNS message is one `timespec`.
        #[allow(unsafe_code)]
        unsafe {
            let mut header = libc::CMSG_FIRSTHDR(&raw const message);
            while !header.is_null() {
                if (*header).cmsg_level == libc::SOL_SOCKET
                    && (*header).cmsg_type == libc::SCM_TIMESTAMPNS
                {
                    let at: libc::timespec =
                        std::ptr::read_unaligned(libc::CMSG_DATA(header).cast());
                    stamp = u64::try_from(at.tv_sec)
                        .ok()
                        .zip(u32::try_from(at.tv_nsec).ok())
                        .and_then(|(s, ns)| {
                            SystemTime::UNIX_EPOCH.checked_add(Duration::new(s, ns))
                        });
                }
                header = libc::CMSG_NXTHDR(&raw const message, header);
            }
        }
        Ok((n, stamp))
    }
}

/// Elsewhere the open model's connections stay on the runtime's epoll.
#[cfg(not(target_os = "linux"))]
pub(crate) use elsewhere::{Eager, Harvester, TickedStream};

#[cfg(not(target_os = "linux"))]
mod elsewhere {
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use std::time::Instant;

    pub(crate) struct Harvester;

    impl Harvester {
        pub(crate) fn new() -> std::io::Result<Self> {
            Err(std::io::ErrorKind::Unsupported.into())
        }

        pub(crate) fn waiting(&self) -> bool {
            false
        }

        pub(crate) fn harvest(&self) -> std::io::Result<usize> {
            Ok(0)
        }

        pub(crate) async fn first_waiter(&self) {
            std::future::pending().await
        }

        pub(crate) async fn ready(&self, _eager: &mut Eager) {
            std::future::pending().await
        }
    }

    #[derive(Default)]
    pub(crate) struct Eager;

    impl Eager {
        pub(crate) fn off(&mut self) {}
    }

    /// Never built: [`Harvester::new`] fails here.
    pub(crate) enum TickedStream {}

    impl TickedStream {
        pub(crate) fn new(
            _stream: tokio::net::TcpStream,
            _harvester: std::sync::Arc<Harvester>,
        ) -> std::io::Result<Self> {
            Err(std::io::ErrorKind::Unsupported.into())
        }

        pub(crate) fn take_received_at(&mut self) -> Option<Instant> {
            match *self {}
        }
    }

    impl tokio::io::AsyncRead for TickedStream {
        fn poll_read(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            _buf: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            match *self {}
        }
    }

    impl tokio::io::AsyncWrite for TickedStream {
        fn poll_write(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            _buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            match *self {}
        }

        fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            match *self {}
        }

        fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            match *self {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_arrives_when_the_kernel_stamped_it() {
        let now = Instant::now();
        let wall = SystemTime::now();
        let stamp = wall - Duration::from_micros(700);
        assert_eq!(arrival(stamp, now, wall), now - Duration::from_micros(700));
        // A stamp from the future (the wall clock stepped back) or from
        // long ago (stepped forward): the read's own time.
        assert_eq!(arrival(wall + Duration::from_millis(5), now, wall), now);
        assert_eq!(arrival(wall - Duration::from_secs(3600), now, wall), now);
    }
}

#[cfg(all(test, target_os = "linux"))]
mod harvested {
    use super::*;
    use std::future::Future;
    use std::io::Write;
    use std::pin::pin;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Counts its wake-ups.
    #[derive(Default)]
    struct Wakes(AtomicUsize);

    impl Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_answer_is_read_at_the_harvest_and_timed_when_it_arrived() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let client = tokio::net::TcpStream::connect(listener.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (mut server, _) = listener.accept().expect("accept");
        let harvester = Arc::new(Harvester::new().expect("epoll"));
        let mut stream = TickedStream::new(client, harvester.clone()).expect("ticked");
        let wakes = Arc::new(Wakes::default());
        let waker = Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);

        stream.write_all(b"ping").await.expect("write");
        let mut asked = [0u8; 4];
        std::io::Read::read_exact(&mut server, &mut asked).expect("server reads");
        assert_eq!(&asked, b"ping");

        let mut answer = [0u8; 64];
        let mut read = pin!(stream.read(&mut answer));
        // Nothing yet: the read waits, and the harvester knows.
        assert!(read.as_mut().poll(&mut cx).is_pending());
        assert!(harvester.waiting());
        // (The socket's first harvest reports it writable: a wake-up
        // that finds nothing to read.)
        harvester.harvest().expect("harvest");
        assert!(read.as_mut().poll(&mut cx).is_pending());
        let woken = wakes.0.load(Ordering::SeqCst);

        let before_answer = Instant::now();
        server.write_all(b"pong").expect("server writes");
        // The answer is in, but nothing reads it before a harvest.
        assert!(read.as_mut().poll(&mut cx).is_pending());
        assert_eq!(wakes.0.load(Ordering::SeqCst), woken);
        assert_eq!(harvester.harvest().expect("harvest"), 1);
        let harvested = Instant::now();
        assert_eq!(wakes.0.load(Ordering::SeqCst), woken + 1);
        assert!(!harvester.waiting());
        let Poll::Ready(Ok(n)) = read.as_mut().poll(&mut cx) else {
            panic!("the harvested read did not complete");
        };
        assert_eq!(&answer[..n], b"pong");
        // Timed by the kernel's receive timestamp: after the server wrote,
        // and before the harvest that found it ended (the read came after).
        // The stamp is the kernel's wall clock mapped onto the monotonic
        // one, measured 3-5 us off on this VM: the bounds allow
        // `CLOCK_SKEW`, far below a harvest interval.
        const CLOCK_SKEW: Duration = Duration::from_micros(100);
        let received = stream.take_received_at().expect("a receive time");
        assert!(
            received + CLOCK_SKEW >= before_answer,
            "{received:?} < {before_answer:?}"
        );
        assert!(
            received <= harvested + CLOCK_SKEW,
            "{received:?} > {harvested:?}"
        );
        assert_eq!(stream.take_received_at(), None);

        // The socket drained: the next read waits without a syscall, and
        // the end of the stream reaches it through a harvest too.
        let mut read = pin!(stream.read(&mut answer));
        assert!(read.as_mut().poll(&mut cx).is_pending());
        drop(server);
        assert_eq!(harvester.harvest().expect("harvest"), 1);
        assert!(matches!(read.as_mut().poll(&mut cx), Poll::Ready(Ok(0))));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_closed_connection_leaves_no_waiter_behind() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let client = tokio::net::TcpStream::connect(listener.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (_server, _) = listener.accept().expect("accept");
        let harvester = Arc::new(Harvester::new().expect("epoll"));
        let mut stream = TickedStream::new(client, harvester.clone()).expect("ticked");
        let mut cx = Context::from_waker(Waker::noop());
        {
            let mut answer = [0u8; 8];
            let mut read = pin!(stream.read(&mut answer));
            // The first read finds nothing and waits.
            assert!(read.as_mut().poll(&mut cx).is_pending());
        }
        assert!(harvester.waiting());
        drop(stream);
        assert!(!harvester.waiting());
        // A dispatcher about to sleep long is told of the next waiter.
        let first = harvester.first_waiter();
        let mut first = pin!(first);
        assert!(first.as_mut().poll(&mut cx).is_pending());
    }
}

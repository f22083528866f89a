//! The DNS listeners (RFC 1035 §4.2): a UDP fast path on dedicated threads,
//! and TCP on the runtime, one task per connection ([`super::tcp`]).
//!
//! Both hand the raw query bytes and the [`Client`] (address, transport,
//! time of receipt) to a [`Responder`] (a node's [`engine::respond`] or the
//! gateway), so there is one answer engine per
//! kind of server, and count what was sent in [`metrics`](super::metrics)
//! the same way. Neither decodes a message into another library's types:
//! hickory-server spawned a task per datagram and decoded and re-encoded
//! every message around our engine, which cost more than the answer itself
//! (the README's benchmarks show the difference). `UdpMode::Hickory` keeps
//! hickory-server's UDP loop, with the same engine, for comparison only.
//! Nothing here blocks a listener on disk or on another client.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use hickory_proto::op::{
    Header, HeaderCounts, Message, MessageType, Metadata, OpCode, ResponseCode,
};
use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;

use super::engine::{self, Client, Safeguards, Transport};
use super::metrics::{self as tally, DnsTally};
use super::response::Rcode;
use super::tcp::{TcpServer, TcpSettings};
use super::wire::rtype;
use super::zone::Zone;

/// How UDP queries are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UdpMode {
    /// Dedicated threads answering straight from the hot tier.
    #[default]
    FastPath,
    /// hickory-server's UDP loop (a task per datagram); kept for comparison.
    Hickory,
}

/// Listener settings.
#[derive(Debug, Clone)]
pub struct DnsListen {
    /// One address for UDP and TCP; port 0 picks a free port for both.
    pub addr: SocketAddr,
    pub udp_mode: UdpMode,
    /// UDP fast-path threads.
    pub udp_workers: usize,
    /// Idle timeout of a TCP connection: how long it may go without a
    /// whole query, and how long one write to it may take.
    pub tcp_timeout: Duration,
    /// TCP connections served at once; beyond it new ones are closed on
    /// accept.
    pub tcp_max_connections: usize,
}

/// Errors starting the listeners.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    #[error("cannot bind {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("DNS server task failed: {0}")]
    Task(String),
}

/// What an answerer did with a query on the fast path.
pub enum Now {
    /// `out` holds the response.
    Answered(engine::Summary),
    /// Nothing is sent (not a query, or unanswerable).
    Drop,
    /// The answer needs upstream work: call [`Responder::respond_later`].
    Later,
    /// Response-rate limiting dropped the answer: nothing is sent, the
    /// summary is counted.
    Limited(engine::Summary),
}

impl From<Option<engine::Summary>> for Now {
    /// What [`engine::respond`] decided.
    fn from(summary: Option<engine::Summary>) -> Now {
        match summary {
            Some(s) if s.rrl == super::rrl::Action::Dropped => Now::Limited(s),
            Some(s) => Now::Answered(s),
            None => Now::Drop,
        }
    }
}

/// Something that answers DNS queries: a node's hot tier, or the gateway.
/// `respond_now` runs on the UDP threads and the TCP connection tasks and
/// must never block; what it cannot answer from memory goes to
/// `respond_later` on the runtime.
#[async_trait::async_trait]
pub trait Responder: Send + Sync + 'static {
    fn respond_now(&self, msg: &[u8], client: &Client, out: &mut Vec<u8>) -> Now;

    /// The zone-transfer side, for a node that serves one: AXFR and IXFR
    /// requests (which `respond_now` refuses) are answered by it instead.
    fn transfers(&self) -> Option<&super::xfr::Transfers> {
        None
    }

    async fn respond_later(
        &self,
        msg: Vec<u8>,
        client: Client,
    ) -> Option<(Vec<u8>, engine::Summary)> {
        let mut out = Vec::new();
        match self.respond_now(&msg, &client, &mut out) {
            Now::Answered(s) => Some((out, s)),
            Now::Drop | Now::Later | Now::Limited(_) => None,
        }
    }
}

/// A bare zone: its answers without cookies or rate limiting.
impl Responder for Zone {
    fn respond_now(&self, msg: &[u8], client: &Client, out: &mut Vec<u8>) -> Now {
        engine::respond(self, &Safeguards::NONE, msg, client, out).into()
    }
}

/// Running DNS listeners; dropping without `shutdown` leaves threads to
/// stop on their own at process exit.
pub struct DnsServer {
    local: SocketAddr,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    tcp: TcpServer,
    /// Only with `UdpMode::Hickory`.
    hickory: Option<hickory_server::Server<Handler>>,
}

impl DnsServer {
    /// Binds UDP and TCP on the same address and starts serving `zone`.
    /// Must be called inside a tokio runtime.
    pub async fn start(
        zone: Arc<dyn Responder>,
        listen: &DnsListen,
    ) -> Result<DnsServer, ServerError> {
        let runtime = tokio::runtime::Handle::current();
        let (udp, tcp) = bind_pair(listen.addr)?;
        let local = udp.local_addr().map_err(|source| ServerError::Bind {
            addr: listen.addr,
            source,
        })?;
        let tcp = TcpServer::start(
            tcp,
            zone.clone(),
            TcpSettings {
                idle: listen.tcp_timeout,
                max_connections: listen.tcp_max_connections,
            },
        );
        let mut hickory = None;
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        match listen.udp_mode {
            UdpMode::Hickory => {
                let udp = udp
                    .set_nonblocking(true)
                    .and_then(|()| tokio::net::UdpSocket::from_std(udp))
                    .map_err(|source| ServerError::Bind {
                        addr: local,
                        source,
                    })?;
                let mut server = hickory_server::Server::new(Handler { zone: zone.clone() });
                server.register_socket(udp);
                hickory = Some(server);
            }
            UdpMode::FastPath => {
                udp.set_nonblocking(false)
                    .and_then(|()| udp.set_read_timeout(Some(Duration::from_millis(200))))
                    .map_err(|source| ServerError::Bind {
                        addr: local,
                        source,
                    })?;
                for i in 0..listen.udp_workers.max(1) {
                    let socket = udp.try_clone().map_err(|source| ServerError::Bind {
                        addr: local,
                        source,
                    })?;
                    let (zone, stop) = (zone.clone(), stop.clone());
                    let runtime = runtime.clone();
                    let handle = std::thread::Builder::new()
                        .name(format!("dns-udp-{i}"))
                        .spawn(move || udp_worker(socket, &zone, &stop, &runtime))
                        .map_err(|e| ServerError::Task(e.to_string()))?;
                    threads.push(handle);
                }
            }
        }
        Ok(DnsServer {
            local,
            stop,
            threads,
            tcp,
            hickory,
        })
    }

    /// The bound address (UDP and TCP share it).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Stops accepting queries and waits for the listeners to finish.
    pub async fn shutdown(mut self) -> Result<(), ServerError> {
        self.stop.store(true, Ordering::Relaxed);
        let threads = std::mem::take(&mut self.threads);
        let joined = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        });
        self.tcp.shutdown().await.map_err(ServerError::Task)?;
        if let Some(mut hickory) = self.hickory.take() {
            hickory
                .shutdown_gracefully()
                .await
                .map_err(|e| ServerError::Task(e.to_string()))?;
        }
        joined.await.map_err(|e| ServerError::Task(e.to_string()))
    }
}

/// Binds UDP and TCP to one port. With port 0 the kernel picks the UDP port;
/// if TCP cannot have the same one, try again with another.
fn bind_pair(addr: SocketAddr) -> Result<(UdpSocket, tokio::net::TcpListener), ServerError> {
    let err = |source| ServerError::Bind { addr, source };
    let attempts = if addr.port() == 0 { 16 } else { 1 };
    let mut last = None;
    for _ in 0..attempts {
        let udp = UdpSocket::bind(addr).map_err(err)?;
        let local = udp.local_addr().map_err(err)?;
        match std::net::TcpListener::bind(local) {
            Ok(tcp) => {
                tcp.set_nonblocking(true).map_err(err)?;
                let tcp = tokio::net::TcpListener::from_std(tcp).map_err(err)?;
                return Ok((udp, tcp));
            }
            Err(e) => last = Some(e),
        }
    }
    Err(err(last.unwrap_or_else(|| io::Error::other("no port"))))
}

/// Datagrams taken per system call: `recvmmsg`/`sendmmsg` carry up to this
/// many queries and answers each, which is where a busy server saves most.
const BATCH: usize = 32;
/// Largest query read. Anything longer is cut and answered FORMERR:
/// no legitimate query comes near it.
const MAX_QUERY: usize = 4096;

/// Answers a query that needs upstream work on the runtime, then sends the
/// response from there.
fn later(
    runtime: &tokio::runtime::Handle,
    zone: &Arc<dyn Responder>,
    socket: &Arc<UdpSocket>,
    query: &[u8],
    to: SocketAddr,
) {
    let (zone, socket, query) = (zone.clone(), socket.clone(), query.to_vec());
    let client = Client::new(to.ip(), Transport::Udp);
    runtime.spawn(async move {
        if let Some((out, summary)) = zone.respond_later(query, client).await {
            tally::count_answer(&summary, std::time::Duration::ZERO);
            // A datagram send does not block for long: the kernel queues it.
            if let Err(e) = socket.send_to(&out, to) {
                tracing::debug!(error = %e, "udp send failed");
            }
        }
    });
}

#[cfg(target_os = "linux")]
fn udp_worker(
    socket: UdpSocket,
    zone: &Arc<dyn Responder>,
    stop: &AtomicBool,
    runtime: &tokio::runtime::Handle,
) {
    use std::io::{IoSlice, IoSliceMut};
    use std::os::fd::AsRawFd;

    use nix::sys::socket::{
        MsgFlags, MultiHeaders, SockaddrLike, SockaddrStorage, recvmmsg, sendmmsg,
    };

    let socket = Arc::new(socket);
    let fd = socket.as_raw_fd();
    let mut bufs = vec![[0u8; MAX_QUERY]; BATCH];
    let mut outs: Vec<Vec<u8>> = (0..BATCH)
        .map(|_| Vec::with_capacity(usize::from(engine::MAX_UDP_PAYLOAD)))
        .collect();
    let mut rx = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
    let mut tx = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
    let mut got: Vec<(usize, SockaddrStorage)> = Vec::with_capacity(BATCH);
    let mut addrs: Vec<Option<SockaddrStorage>> = Vec::with_capacity(BATCH);
    let mut tally = DnsTally::new();
    while !stop.load(Ordering::Relaxed) {
        got.clear();
        {
            let mut iovs: Vec<[IoSliceMut<'_>; 1]> =
                bufs.iter_mut().map(|b| [IoSliceMut::new(b)]).collect();
            // Blocks for the first datagram (or the socket's read timeout,
            // so `stop` is seen), then takes whatever else is queued.
            match recvmmsg(fd, &mut rx, iovs.iter_mut(), MsgFlags::MSG_WAITFORONE, None) {
                Ok(msgs) => {
                    for m in msgs {
                        if let Some(addr) = m.address {
                            got.push((m.bytes, addr));
                        }
                    }
                }
                Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    tracing::debug!(error = %e, "udp receive failed");
                    continue;
                }
            }
        }
        let received = std::time::Instant::now();
        addrs.clear();
        let mut n = 0;
        for ((len, addr), buf) in got.iter().zip(&bufs) {
            // Port 0 cannot be answered; such datagrams are spoofed or broken.
            let Some(peer) = socket_addr(addr).filter(|a| a.port() != 0) else {
                continue;
            };
            if addr.len() == 0 {
                continue;
            }
            // A datagram longer than the buffer was cut to it.
            let query = buf.get(..*len).unwrap_or(buf);
            // One answer buffer per received datagram: `n < got.len() <= BATCH`.
            let Some(out) = outs.get_mut(n) else {
                break;
            };
            match zone.respond_now(query, &Client::udp(peer.ip(), received), out) {
                Now::Answered(mut summary) => {
                    if summary.qtype == rtype::IXFR {
                        match transfer_udp(&**zone, query, peer, out, summary) {
                            Some(s) => summary = s,
                            None => continue,
                        }
                    }
                    tally.count(&summary);
                    addrs.push(Some(*addr));
                    n += 1;
                }
                Now::Limited(summary) => tally.count(&summary),
                Now::Drop => {}
                Now::Later => later(runtime, zone, &socket, query, peer),
            }
        }
        if n == 0 {
            tally.flush(received.elapsed(), 0);
            continue;
        }
        let slices: Vec<[IoSlice<'_>; 1]> =
            outs.iter().take(n).map(|o| [IoSlice::new(o)]).collect();
        if let Err(e) = sendmmsg(fd, &mut tx, slices.iter(), &addrs, [], MsgFlags::empty()) {
            tracing::debug!(error = %e, "udp send failed");
        }
        tally.flush(received.elapsed(), n as u64);
    }
}

#[cfg(target_os = "linux")]
fn socket_addr(addr: &nix::sys::socket::SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = addr.as_sockaddr_in() {
        return Some(SocketAddr::from((v4.ip(), v4.port())));
    }
    addr.as_sockaddr_in6()
        .map(|v6| SocketAddr::from((v6.ip(), v6.port())))
}

#[cfg(not(target_os = "linux"))]
fn udp_worker(
    socket: UdpSocket,
    zone: &Arc<dyn Responder>,
    stop: &AtomicBool,
    runtime: &tokio::runtime::Handle,
) {
    let socket = Arc::new(socket);
    let mut buf = vec![0u8; MAX_QUERY];
    let mut out = Vec::with_capacity(usize::from(engine::MAX_UDP_PAYLOAD));
    let mut tally = DnsTally::new();
    let _ = BATCH;
    while !stop.load(Ordering::Relaxed) {
        let Ok((len, src)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let received = std::time::Instant::now();
        if src.port() == 0 {
            continue;
        }
        let client = Client::udp(src.ip(), received);
        match zone.respond_now(&buf[..len], &client, &mut out) {
            Now::Answered(mut summary) => {
                if summary.qtype == rtype::IXFR {
                    match transfer_udp(&**zone, &buf[..len], src, &mut out, summary) {
                        Some(s) => summary = s,
                        None => continue,
                    }
                }
                tally.count(&summary);
                let _ = socket.send_to(&out, src);
                tally.flush(received.elapsed(), 1);
            }
            Now::Limited(summary) => {
                tally.count(&summary);
                tally.flush(received.elapsed(), 0);
            }
            Now::Drop => {}
            Now::Later => later(runtime, zone, &socket, &buf[..len], src),
        }
    }
}

/// An IXFR over UDP, which `respond_now` refused (`summary`): a node's
/// transfer side answers it instead (`None`: drop it). Without one the
/// refusal stands.
fn transfer_udp(
    zone: &dyn Responder,
    query: &[u8],
    peer: SocketAddr,
    out: &mut Vec<u8>,
    summary: engine::Summary,
) -> Option<engine::Summary> {
    match zone.transfers() {
        Some(t) => t.udp(query, peer.ip(), out),
        None => Some(summary),
    }
}

/// Our `RequestHandler` for `UdpMode::Hickory`: runs the engine on the raw
/// query and hands the result to hickory's response path.
struct Handler {
    zone: Arc<dyn Responder>,
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let transport = match request.protocol() {
            Protocol::Udp => Transport::Udp,
            _ => Transport::Tcp,
        };
        let client = Client::new(request.src().ip(), transport);
        let mut out = Vec::new();
        let failed = || {
            let mut metadata =
                Metadata::new(request.metadata.id, MessageType::Response, OpCode::Query);
            // hickory's type, from cpid's one rcode type.
            metadata.response_code = <ResponseCode as From<u16>>::from(Rcode::ServFail.code());
            ResponseInfo::from(Header {
                metadata,
                counts: HeaderCounts::default(),
            })
        };
        let received = std::time::Instant::now();
        let summary = match self.zone.respond_now(request.as_slice(), &client, &mut out) {
            Now::Answered(s) => s,
            Now::Limited(s) => {
                tally::count_answer(&s, received.elapsed());
                return failed();
            }
            Now::Drop => return failed(),
            Now::Later => match self
                .zone
                .respond_later(request.as_slice().to_vec(), client)
                .await
            {
                Some((o, s)) => {
                    out = o;
                    s
                }
                None => return failed(),
            },
        };
        tally::count_answer(&summary, received.elapsed());
        // hickory sends a `MessageResponse`, not bytes: decode our answer
        // into its types. The question is re-emitted from the request as
        // received, so the client's case is kept.
        let msg = match Message::from_vec(&out) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(error = %e, "engine produced an undecodable response");
                return failed();
            }
        };
        let mut builder = MessageResponseBuilder::from_message_request(request);
        if let Some(edns) = &msg.edns {
            builder.edns(edns);
        }
        let response = builder.build(
            msg.metadata,
            msg.answers.iter(),
            msg.authorities.iter(),
            std::iter::empty(),
            msg.additionals.iter(),
        );
        match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(e) => {
                tracing::debug!(error = %e, "sending response failed");
                failed()
            }
        }
    }
}

//! DNS over TCP: cpid's own listener (RFC 1035 §4.2.2, RFC 7766).
//!
//! Every message on a connection is a 2-byte big-endian length followed by
//! that many bytes, so no message exceeds 65 535 bytes. One task per
//! connection reads what the client sent, answers every whole message in
//! it through the same [`Responder`] the UDP path uses, and writes the
//! length-prefixed answers back in the order the queries arrived (RFC 7766
//! §6.2.1.1 also allows any order; in order is the simple one), one write
//! per batch of pipelined queries. Buffers live as long as the connection:
//! answering a query allocates nothing here.
//!
//! What it must never do: let one client hold up another. A client that
//! stops reading is cut off when a write cannot finish within the idle
//! timeout; a connection with no whole query for the idle timeout is closed
//! (bytes trickling in do not keep it open); beyond `max_connections` new
//! connections are closed at once; a zero-length frame, or a message the
//! engine drops (shorter than a header, or itself a response), closes the
//! connection. Malformed queries with a readable header get FORMERR from
//! the engine, as over UDP.
//!
//! Zone transfers ride on the same connections: an AXFR or IXFR that the
//! engine refuses goes to the node's transfer side ([`Responder::transfers`],
//! `dns::xfr`) with the peer's address; a transfer that is allowed is
//! produced on a blocking thread and written here, message batch by batch,
//! under the same write timeout, before the next query on the connection.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinHandle;

use super::engine::Transport;
use super::metrics::DnsTally;
use super::query::Client;
use super::server::{Now, Responder};
use super::wire::rtype;
use super::xfr::{self, Reply};

/// Length of the prefix in front of every message.
const PREFIX: usize = 2;
/// Read buffer a connection starts with; it grows to hold a longer message
/// (at most `PREFIX + 65 535` bytes).
const INITIAL_READ: usize = 4096;
/// Answers gathered for one write; beyond this they are sent before more
/// queries are answered, so a client that pipelines much and reads little
/// cannot make the server buffer much for it.
const FLUSH_AT: usize = 16 * 1024;

/// What the front of a connection's unread bytes holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A whole message; it and its prefix take `message.len() + 2` bytes.
    Message(&'a [u8]),
    /// Not whole yet: `needed` bytes in all (prefix included) make the next
    /// frame, as far as is known (2 until the prefix is in).
    Incomplete { needed: usize },
    /// A zero length prefix: not a DNS message.
    Empty,
}

/// Splits the next frame off the front of `buf` (RFC 1035 §4.2.2).
pub fn next_frame(buf: &[u8]) -> Frame<'_> {
    let Some(&[hi, lo]) = buf.get(..PREFIX) else {
        return Frame::Incomplete { needed: PREFIX };
    };
    let len = usize::from(u16::from_be_bytes([hi, lo]));
    if len == 0 {
        return Frame::Empty;
    }
    match buf.get(PREFIX..PREFIX + len) {
        Some(message) => Frame::Message(message),
        None => Frame::Incomplete {
            needed: PREFIX + len,
        },
    }
}

/// Appends `answer` to `out` with its length prefix; false when it cannot be
/// framed (longer than 65 535 bytes, which the engine never writes).
pub fn push_framed(out: &mut Vec<u8>, answer: &[u8]) -> bool {
    let Ok(len) = u16::try_from(answer.len()) else {
        return false;
    };
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(answer);
    true
}

/// TCP listener settings.
#[derive(Debug, Clone, Copy)]
pub(super) struct TcpSettings {
    /// How long a connection may go without a whole query, and how long a
    /// write may take.
    pub(super) idle: Duration,
    /// Connections served at once; more are closed on accept.
    pub(super) max_connections: usize,
}

/// The running TCP listener.
pub(super) struct TcpServer {
    stop: watch::Sender<bool>,
    accept: JoinHandle<()>,
    permits: Arc<Semaphore>,
    max: u32,
}

impl TcpServer {
    /// Starts accepting on `listener`. Must be called inside a tokio runtime.
    pub(super) fn start(
        listener: TcpListener,
        zone: Arc<dyn Responder>,
        settings: TcpSettings,
    ) -> TcpServer {
        let max = u32::try_from(settings.max_connections.max(1)).unwrap_or(u32::MAX);
        let permits = Arc::new(Semaphore::new(max as usize));
        let (stop, stopped) = watch::channel(false);
        let accept = tokio::spawn(accept_loop(
            listener,
            zone,
            settings,
            permits.clone(),
            stopped,
        ));
        TcpServer {
            stop,
            accept,
            permits,
            max,
        }
    }

    /// Stops accepting, closes idle connections, and waits until every
    /// connection has ended (a write in progress gets the idle timeout).
    pub(super) async fn shutdown(self) -> Result<(), String> {
        let _ = self.stop.send(true);
        self.accept.await.map_err(|e| e.to_string())?;
        // Every connection holds a permit until its task ends.
        let all = self
            .permits
            .acquire_many(self.max)
            .await
            .map_err(|e| e.to_string())?;
        drop(all);
        Ok(())
    }
}

async fn accept_loop(
    listener: TcpListener,
    zone: Arc<dyn Responder>,
    settings: TcpSettings,
    permits: Arc<Semaphore>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            biased;
            _ = stopped.wait_for(|&s| s) => return,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors and the like: do not spin on it.
                tracing::debug!(error = %e, "tcp accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::debug!(
                limit = settings.max_connections,
                "tcp connection limit reached; closing a new connection"
            );
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (zone, stopped) = (zone.clone(), stopped.clone());
        tokio::spawn(serve(stream, peer, zone, settings.idle, stopped, permit));
    }
}

/// Reads what has arrived, or `WouldBlock` when nothing has, without
/// waiting. Unlike `try_read`, tokio's `poll_read` marks the socket drained
/// after a short read, so the next attempt after answering does not cost a
/// read that fails with EAGAIN: under load that was half a system call per
/// answer. The waker it registers when nothing is there is this task's.
async fn read_ready(stream: &mut TcpStream, space: &mut [u8]) -> io::Result<usize> {
    let mut buf = ReadBuf::new(space);
    let polled =
        std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *stream).poll_read(cx, &mut buf)))
            .await;
    match polled {
        Poll::Ready(Ok(())) => Ok(buf.filled().len()),
        Poll::Ready(Err(e)) => Err(e),
        Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
    }
}

/// Why a connection ends (for the debug log).
#[derive(Debug)]
enum Close {
    Eof,
    Idle,
    Shutdown,
    EmptyFrame,
    Dropped,
    WriteStalled,
    Io(io::ErrorKind),
}

async fn serve(
    mut stream: TcpStream,
    peer: std::net::SocketAddr,
    zone: Arc<dyn Responder>,
    idle: Duration,
    mut stopped: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
) {
    let mut conn = Connection {
        input: vec![0; INITIAL_READ],
        start: 0,
        end: 0,
        answer: Vec::with_capacity(512),
        batch: Vec::with_capacity(FLUSH_AT),
        tally: DnsTally::new(),
        idle,
        peer: peer.ip(),
    };
    let why = conn.run(&mut stream, &*zone, &mut stopped).await;
    match why {
        Close::Io(kind) => tracing::debug!(error = ?kind, "tcp connection failed"),
        why => tracing::trace!(reason = ?why, "tcp connection closed"),
    }
    let _ = stream.shutdown().await;
}

/// One connection's buffers.
struct Connection {
    /// Bytes read; `start..end` are not yet answered.
    input: Vec<u8>,
    start: usize,
    end: usize,
    /// One answer, as the engine writes it.
    answer: Vec<u8>,
    /// Framed answers waiting to be written.
    batch: Vec<u8>,
    tally: DnsTally,
    idle: Duration,
    peer: std::net::IpAddr,
}

impl Connection {
    async fn run(
        &mut self,
        stream: &mut TcpStream,
        zone: &dyn Responder,
        stopped: &mut watch::Receiver<bool>,
    ) -> Close {
        let mut deadline = tokio::time::Instant::now() + self.idle;
        loop {
            // Read what is there without a timer; wait only when nothing is.
            let Some(space) = self.input.get_mut(self.end..) else {
                return Close::Dropped;
            };
            let n = match read_ready(stream, space).await {
                Ok(0) => return Close::Eof,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let wait = tokio::select! {
                        biased;
                        _ = stopped.wait_for(|&s| s) => return Close::Shutdown,
                        r = tokio::time::timeout_at(deadline, stream.readable()) => r,
                    };
                    match wait {
                        Ok(Ok(())) => continue,
                        Ok(Err(e)) => return Close::Io(e.kind()),
                        Err(_) => return Close::Idle,
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Close::Io(e.kind()),
            };
            self.end += n;
            let received = Instant::now();
            let (answered, closing) = self.answer_frames(stream, zone).await;
            // The answers before a bad frame still go out.
            let flushed = match closing {
                None | Some(Close::EmptyFrame | Close::Dropped) => self.flush(stream).await,
                Some(_) => Ok(()),
            };
            if answered > 0 {
                self.tally.flush(received.elapsed(), answered);
                deadline = tokio::time::Instant::now() + self.idle;
            }
            if let Some(why) = closing {
                return why;
            }
            if let Err(why) = flushed {
                return why;
            }
        }
    }

    /// Answers every whole message in the input, then makes room for the
    /// rest of the next one. Returns how many were answered, and why the
    /// connection must close if it must.
    async fn answer_frames(
        &mut self,
        stream: &mut TcpStream,
        zone: &dyn Responder,
    ) -> (u64, Option<Close>) {
        let mut answered = 0;
        let needed = loop {
            let unread = self.input.get(self.start..self.end).unwrap_or_default();
            let message = match next_frame(unread) {
                Frame::Message(m) => m,
                Frame::Incomplete { needed } => break needed,
                Frame::Empty => return (answered, Some(Close::EmptyFrame)),
            };
            let taken = PREFIX + message.len();
            let client = Client::new(self.peer, Transport::Tcp);
            match zone.respond_now(message, &client, &mut self.answer) {
                Now::Answered(summary)
                    if matches!(summary.qtype, rtype::AXFR | rtype::IXFR)
                        && let Some(transfers) = zone.transfers() =>
                {
                    match transfers.tcp(message, self.peer, &mut self.answer) {
                        Some(Reply::One(summary)) => self.tally.count(&summary),
                        Some(Reply::Stream(xfr)) => {
                            self.start += taken;
                            answered += 1;
                            self.tally.count(&super::engine::Summary {
                                rcode: super::engine::Rcode::NoError,
                                answers: 0,
                                truncated: false,
                                ..summary
                            });
                            if let Err(why) = self.stream(stream, xfr).await {
                                return (answered, Some(why));
                            }
                            continue;
                        }
                        None => return (answered, Some(Close::Dropped)),
                    }
                }
                Now::Answered(summary) => self.tally.count(&summary),
                // TCP is never rate-limited; a responder that did is dropped.
                Now::Drop | Now::Limited(_) => return (answered, Some(Close::Dropped)),
                Now::Later => {
                    // Upstream work: what is answered goes out first, then
                    // this connection waits for this answer (in order).
                    let query = message.to_vec();
                    if let Err(why) = self.flush(stream).await {
                        return (answered, Some(why));
                    }
                    match zone.respond_later(query, client).await {
                        Some((out, summary)) => {
                            self.tally.count(&summary);
                            self.answer = out;
                        }
                        None => return (answered, Some(Close::Dropped)),
                    }
                }
            }
            if !push_framed(&mut self.batch, &self.answer) {
                return (answered, Some(Close::Dropped));
            }
            answered += 1;
            self.start += taken;
            if self.batch.len() >= FLUSH_AT
                && let Err(why) = self.flush(stream).await
            {
                return (answered, Some(why));
            }
        };
        self.make_room(needed);
        (answered, None)
    }

    /// Sends a zone transfer: what is answered before it goes out first;
    /// the messages are made on a blocking thread and written as they
    /// come, each batch within the write timeout. A client that stops
    /// reading stops the producer too.
    async fn stream(&mut self, stream: &mut TcpStream, xfr: Box<xfr::Stream>) -> Result<(), Close> {
        self.flush(stream).await?;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
        let producer = tokio::task::spawn_blocking(move || {
            xfr.run(&mut |batch| tx.blocking_send(batch).is_ok())
        });
        while let Some(batch) = rx.recv().await {
            match tokio::time::timeout(self.idle, stream.write_all(&batch)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(Close::Io(e.kind())),
                Err(_) => return Err(Close::WriteStalled),
            }
        }
        let (messages, records) = producer.await.unwrap_or_default();
        tracing::info!(peer = %self.peer, messages, records, "zone transfer sent");
        Ok(())
    }

    /// Keeps the unread bytes at the front of a buffer that can hold
    /// `needed` bytes in all, so a read always has space.
    fn make_room(&mut self, needed: usize) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.input.len() - self.start < needed || self.end == self.input.len() {
            self.input.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.input.len() < needed {
            self.input.resize(needed, 0);
        }
    }

    /// Writes the batch: one system call when the socket takes it all,
    /// otherwise waits up to the idle timeout for the client to read.
    async fn flush(&mut self, stream: &mut TcpStream) -> Result<(), Close> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let sent = match stream.try_write(&self.batch) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
            Err(e) => return Err(Close::Io(e.kind())),
        };
        if let Some(rest) = self.batch.get(sent..)
            && !rest.is_empty()
        {
            match tokio::time::timeout(self.idle, stream.write_all(rest)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(Close::Io(e.kind())),
                Err(_) => return Err(Close::WriteStalled),
            }
        }
        self.batch.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_at_the_length_prefix() {
        assert_eq!(next_frame(&[]), Frame::Incomplete { needed: 2 });
        assert_eq!(next_frame(&[0]), Frame::Incomplete { needed: 2 });
        assert_eq!(next_frame(&[0, 0, 9]), Frame::Empty);
        assert_eq!(next_frame(&[0, 3, 1, 2]), Frame::Incomplete { needed: 5 });
        assert_eq!(next_frame(&[0, 3, 1, 2, 3, 4]), Frame::Message(&[1, 2, 3]));
        assert_eq!(
            next_frame(&[0xff, 0xff]),
            Frame::Incomplete { needed: 65_537 }
        );
    }

    #[test]
    fn answers_are_framed_with_their_length() {
        let mut out = Vec::new();
        assert!(push_framed(&mut out, &[7; 3]));
        assert_eq!(out, [0, 3, 7, 7, 7]);
        assert!(!push_framed(&mut out, &vec![0; 65_536]));
        assert_eq!(out.len(), 5);
    }
}

//! A small DNS client for `cpid resolve` and the tests: sends one query over
//! UDP (retrying over TCP when the answer is truncated) and checks a signed
//! record against a node key.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

use crate::dns::wire::rtype;
use crate::ident::identifier::{Apex, Identifier};
use crate::ident::keys::PublicKey;
use crate::ident::record::SignedRecord;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    #[error("network: {0}")]
    Io(#[from] std::io::Error),
    #[error("bad name {0}")]
    Name(String),
    #[error("malformed response: {0}")]
    Malformed(String),
    #[error("server answered {0}")]
    Rcode(String),
    #[error("no {0} record in the answer")]
    Missing(&'static str),
    #[error("record does not verify: {0}")]
    Verify(String),
}

/// Sends a query and returns the response, over TCP if `tcp` is set or the
/// UDP answer came back truncated.
pub fn query(
    server: SocketAddr,
    name: &str,
    qtype: u16,
    tcp: bool,
) -> Result<Message, ClientError> {
    let name = Name::from_ascii(name).map_err(|_| ClientError::Name(name.to_string()))?;
    let mut msg = Message::new(rand_id(), MessageType::Query, OpCode::Query);
    msg.add_query(Query::query(name, RecordType::from(qtype)));
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    msg.edns = Some(edns);
    let bytes = msg
        .to_vec()
        .map_err(|e| ClientError::Malformed(e.to_string()))?;
    if !tcp {
        let resp = udp_exchange(server, &bytes)?;
        if !resp.metadata.truncation {
            return Ok(resp);
        }
    }
    tcp_exchange(server, &bytes)
}

fn rand_id() -> u16 {
    let mut b = [0u8; 2];
    let _ = getrandom::fill(&mut b);
    u16::from_be_bytes(b)
}

fn udp_exchange(server: SocketAddr, bytes: &[u8]) -> Result<Message, ClientError> {
    let bind: SocketAddr = if server.is_ipv6() {
        "[::]:0"
            .parse()
            .map_err(|_| ClientError::Name("::".into()))?
    } else {
        SocketAddr::from(([0, 0, 0, 0], 0))
    };
    let sock = UdpSocket::bind(bind)?;
    sock.set_read_timeout(Some(Duration::from_secs(2)))?;
    sock.connect(server)?;
    let mut buf = vec![0u8; 65_535];
    for _ in 0..3 {
        sock.send(bytes)?;
        match sock.recv(&mut buf) {
            Ok(n) => {
                let reply = buf
                    .get(..n)
                    .ok_or_else(|| ClientError::Malformed("reply longer than the buffer".into()))?;
                return Message::from_vec(reply).map_err(|e| ClientError::Malformed(e.to_string()));
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Err(ClientError::Io(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "no answer over UDP",
    )))
}

fn tcp_exchange(server: SocketAddr, bytes: &[u8]) -> Result<Message, ClientError> {
    let mut s = TcpStream::connect_timeout(&server, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let len =
        u16::try_from(bytes.len()).map_err(|_| ClientError::Malformed("query too long".into()))?;
    s.write_all(&len.to_be_bytes())?;
    s.write_all(bytes)?;
    let mut lenb = [0u8; 2];
    s.read_exact(&mut lenb)?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(lenb))];
    s.read_exact(&mut buf)?;
    Message::from_vec(&buf).map_err(|e| ClientError::Malformed(e.to_string()))
}

fn private_rdata(msg: &Message, t: u16) -> Option<Vec<u8>> {
    msg.answers.iter().find_map(|r| match &r.data {
        RData::Unknown { code, rdata } if u16::from(*code) == t => Some(rdata.anything.clone()),
        _ => None,
    })
}

/// What `resolve` found.
#[derive(Debug)]
pub struct Resolved {
    pub record: SignedRecord,
    pub node_key: PublicKey,
    /// True when the key came from DNS rather than from the caller.
    pub key_from_dns: bool,
}

/// Resolves an identifier and verifies its signature. Without a pinned key
/// the node key is taken from the zone apex (trust on first use).
pub fn resolve(
    server: SocketAddr,
    id: &Identifier,
    apex: &Apex,
    pinned: Option<PublicKey>,
    tcp: bool,
) -> Result<Resolved, ClientError> {
    let name = id.to_dns_name(apex);
    let resp = query(server, &name, rtype::CPREC, tcp)?;
    if resp.metadata.response_code != ResponseCode::NoError {
        return Err(ClientError::Rcode(resp.metadata.response_code.to_string()));
    }
    let bytes = private_rdata(&resp, rtype::CPREC).ok_or(ClientError::Missing("TYPE65280"))?;
    let record = SignedRecord::decode(&bytes).map_err(|e| ClientError::Malformed(e.to_string()))?;
    if &record.record().identifier != id {
        return Err(ClientError::Verify(
            "record is for another identifier".into(),
        ));
    }
    let (node_key, key_from_dns) = match pinned {
        Some(k) => (k, false),
        None => (node_key_from_dns(server, &name, tcp)?, true),
    };
    record
        .verify(&node_key)
        .map_err(|e| ClientError::Verify(e.to_string()))?;
    Ok(Resolved {
        record,
        node_key,
        key_from_dns,
    })
}

/// Finds the zone of `name` (the owner of the SOA in a NODATA answer) and
/// reads the node key published at its apex.
fn node_key_from_dns(server: SocketAddr, name: &str, tcp: bool) -> Result<PublicKey, ClientError> {
    let soa = query(server, name, rtype::SOA, tcp)?;
    let apex = soa
        .authorities
        .iter()
        .chain(soa.answers.iter())
        .find(|r| r.record_type() == RecordType::SOA)
        .map(|r| r.name.to_ascii())
        .ok_or(ClientError::Missing("SOA"))?;
    let resp = query(server, &apex, rtype::CPKEY, tcp)?;
    let rdata = private_rdata(&resp, rtype::CPKEY).ok_or(ClientError::Missing("TYPE65281"))?;
    match rdata.split_first() {
        Some((15, key)) => {
            let key: [u8; 32] = key
                .try_into()
                .map_err(|_| ClientError::Malformed("node key is not 32 octets".into()))?;
            PublicKey::from_bytes(&key).map_err(|e| ClientError::Malformed(e.to_string()))
        }
        _ => Err(ClientError::Malformed(
            "node key algorithm is not Ed25519".into(),
        )),
    }
}

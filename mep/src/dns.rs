//! The MEP's DNS server: answers the domains of ACTIVE DNS rules of READY application instances
//! (A for IPv4 rules, AAAA for IPv6) authoritatively, and forwards every other query to an
//! upstream resolver when one is configured (NXDOMAIN otherwise).
//!
//! Everything it takes and gives is bounded: queries longer than [`MAX_QUERY`] are dropped
//! unread; answers fit the client's UDP size (512 octets, or what its EDNS offers up to
//! `max_udp_payload`) and are truncated with TC set otherwise; at most `max_forwarded`
//! queries wait for the upstream resolver at once, and one more is answered SERVFAIL at once
//! (so is one the upstream does not answer in [`UPSTREAM_TIMEOUT`], or answers with more than
//! [`MAX_RELAYED`] octets).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{RData, Record, RecordType};
use tokio::net::UdpSocket;
use tokio::sync::Semaphore;

use crate::config::DnsConfig;
use crate::platform::{DnsAnswer, DnsTable, normalize_domain};

/// Largest query accepted (RFC 1035's UDP limit; a question needs far less).
pub const MAX_QUERY: usize = 512;
/// Largest answer relayed from the upstream resolver.
pub const MAX_RELAYED: usize = 4096;
/// How long to wait for the upstream resolver.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// The UDP size every client takes (RFC 1035 4.2.1).
const CLASSIC_UDP: u16 = 512;

/// What to do with one query.
enum Reply {
    Answer(Message),
    Forward,
    Ignore,
}

/// A response to `query`: its id, opcode, question and RD flag.
fn response_to(query: &Message, forward: bool) -> Message {
    let mut response = Message::new();
    response
        .set_id(query.id())
        .set_message_type(MessageType::Response)
        .set_op_code(query.op_code())
        .set_recursion_desired(query.recursion_desired())
        .set_recursion_available(forward);
    if let Some(question) = query.queries().first() {
        response.add_query(question.clone());
    }
    response
}

fn answer(query: &Message, table: &DnsTable, forward: bool) -> Reply {
    if query.message_type() != MessageType::Query {
        return Reply::Ignore;
    }
    let mut response = response_to(query, forward);
    if query.op_code() != OpCode::Query {
        response.set_response_code(ResponseCode::NotImp);
        return Reply::Answer(response);
    }
    // one question per query (RFC 9619)
    let [question] = query.queries() else {
        response.set_response_code(ResponseCode::FormErr);
        return Reply::Answer(response);
    };
    let domain = normalize_domain(&question.name().to_ascii());
    let table = match table.read() {
        Ok(t) => t.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    };
    let Some(answers) = table.get(&domain) else {
        if forward {
            return Reply::Forward;
        }
        response.set_response_code(ResponseCode::NXDomain);
        return Reply::Answer(response);
    };
    response.set_authoritative(true);
    for DnsAnswer { ip, ttl } in answers {
        let rdata = match (question.query_type(), ip) {
            (RecordType::A | RecordType::ANY, IpAddr::V4(v4)) => RData::A(A::from(*v4)),
            (RecordType::AAAA | RecordType::ANY, IpAddr::V6(v6)) => RData::AAAA(AAAA::from(*v6)),
            _ => continue,
        };
        response.add_answer(Record::from_rdata(question.name().clone(), *ttl, rdata));
    }
    Reply::Answer(response)
}

/// The octets of `response` to `query`, within the client's UDP size: an EDNS query gets an
/// OPT offering `max_payload` and up to that size, any other 512 octets; answers that do not
/// fit are left out and TC set.
fn finish(query: &Message, mut response: Message, max_payload: u16) -> Vec<u8> {
    let limit = match query.extensions() {
        Some(edns) => {
            let mut ours = Edns::new();
            ours.set_max_payload(max_payload);
            response.set_edns(ours);
            edns.max_payload()
                .clamp(CLASSIC_UDP, max_payload.max(CLASSIC_UDP))
        }
        None => CLASSIC_UDP,
    };
    loop {
        let bytes = response.to_vec().unwrap_or_default();
        if bytes.len() <= usize::from(limit) || response.answers().is_empty() {
            return bytes;
        }
        response.answers_mut().pop();
        response.set_truncated(true);
    }
}

/// A SERVFAIL for `query`.
fn servfail(query: &Message, max_payload: u16) -> Vec<u8> {
    let mut response = response_to(query, true);
    response.set_response_code(ResponseCode::ServFail);
    finish(query, response, max_payload)
}

/// Relays `packet` to `upstream` and its answer to `client`, or SERVFAIL when the upstream
/// does not answer in time or answers too much.
async fn forward(
    socket: &UdpSocket,
    upstream: SocketAddr,
    query: &Message,
    packet: &[u8],
    client: SocketAddr,
    max_payload: u16,
) {
    let reply = relay(upstream, packet).await.unwrap_or_else(|e| {
        tracing::debug!(%client, %upstream, error = %e, "forwarded DNS query failed");
        servfail(query, max_payload)
    });
    if let Err(e) = socket.send_to(&reply, client).await {
        tracing::debug!(%client, error = %e, "DNS send failed");
    }
}

/// The upstream's answer to `packet`.
async fn relay(
    upstream: SocketAddr,
    packet: &[u8],
) -> Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>> {
    let bind: SocketAddr = if upstream.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    // a socket of its own: a fresh source port per query, and only the upstream's datagrams
    // reach it
    let relay = UdpSocket::bind(bind).await?;
    relay.connect(upstream).await?;
    relay.send(packet).await?;
    let mut buf = vec![0u8; MAX_RELAYED + 1];
    let deadline = tokio::time::Instant::now() + UPSTREAM_TIMEOUT;
    loop {
        let n = tokio::time::timeout_at(deadline, relay.recv(&mut buf)).await??;
        if n > MAX_RELAYED {
            return Err(format!("upstream answer longer than {MAX_RELAYED} octets").into());
        }
        let answer = buf.get(..n).unwrap_or_default();
        // an answer to another query (stale or forged) is not this one's
        if answer.len() >= 12 && answer.get(..2) == packet.get(..2) {
            return Ok(answer.to_vec());
        }
    }
}

/// Serves DNS on `socket` until the task is dropped.
pub async fn serve(socket: UdpSocket, table: Arc<DnsTable>, config: DnsConfig) {
    let socket = Arc::new(socket);
    let forwarding = Arc::new(Semaphore::new(
        config.max_forwarded.min(Semaphore::MAX_PERMITS),
    ));
    let max_payload = config.max_udp_payload.max(CLASSIC_UDP);
    // one octet more than a query may have, to tell a long one from one that fits
    let mut buf = vec![0u8; MAX_QUERY + 1];
    loop {
        let (n, client) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "DNS receive failed");
                continue;
            }
        };
        let Some(packet) = buf.get(..n).filter(|_| n <= MAX_QUERY) else {
            tracing::debug!(%client, "DNS query longer than {MAX_QUERY} octets dropped");
            continue;
        };
        let Ok(query) = Message::from_vec(packet) else {
            tracing::debug!(%client, "malformed DNS query ignored");
            continue;
        };
        let reply = match answer(&query, &table, config.upstream.is_some()) {
            Reply::Answer(response) => finish(&query, response, max_payload),
            Reply::Ignore => continue,
            Reply::Forward => match (config.upstream, forwarding.clone().try_acquire_owned()) {
                (Some(upstream), Ok(permit)) => {
                    let packet = packet.to_vec();
                    let socket = socket.clone();
                    tokio::spawn(async move {
                        forward(&socket, upstream, &query, &packet, client, max_payload).await;
                        drop(permit);
                    });
                    continue;
                }
                _ => {
                    tracing::debug!(%client, "DNS forwarding at its bound: SERVFAIL");
                    servfail(&query, max_payload)
                }
            },
        };
        if let Err(e) = socket.send_to(&reply, client).await {
            tracing::debug!(%client, error = %e, "DNS send failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use hickory_proto::rr::Name;
    use std::collections::HashMap;
    use std::sync::RwLock;

    fn query(name: &str, t: RecordType) -> Message {
        let mut m = Message::new();
        m.set_id(7)
            .add_query(Query::query(Name::from_ascii(name).unwrap(), t));
        m
    }

    fn table(name: &str, ips: impl IntoIterator<Item = IpAddr>) -> DnsTable {
        let answers = ips
            .into_iter()
            .map(|ip| DnsAnswer { ip, ttl: 30 })
            .collect();
        RwLock::new(Arc::new(HashMap::from([(name.to_owned(), answers)])))
    }

    fn answered(reply: Reply) -> Message {
        match reply {
            Reply::Answer(m) => m,
            Reply::Forward | Reply::Ignore => panic!("not answered"),
        }
    }

    #[test]
    fn answers_a_only_for_ipv4_and_nxdomain_for_unknown() {
        let table = table("cdn.example.com", ["10.1.2.3".parse().unwrap()]);
        let r = answered(answer(
            &query("CDN.example.com.", RecordType::A),
            &table,
            false,
        ));
        assert_eq!(
            (r.id(), r.answers().len(), r.answers()[0].ttl()),
            (7, 1, 30)
        );
        let r = answered(answer(
            &query("cdn.example.com.", RecordType::AAAA),
            &table,
            false,
        ));
        assert_eq!(
            (r.response_code(), r.answers().len()),
            (ResponseCode::NoError, 0)
        );
        let r = answered(answer(
            &query("other.example.com.", RecordType::A),
            &table,
            false,
        ));
        assert_eq!(r.response_code(), ResponseCode::NXDomain);
        assert!(matches!(
            answer(&query("other.example.com.", RecordType::A), &table, true),
            Reply::Forward
        ));
        let mut two = query("cdn.example.com.", RecordType::A);
        two.add_query(Query::query(
            Name::from_ascii("x.example.").unwrap(),
            RecordType::A,
        ));
        let r = answered(answer(&two, &table, false));
        assert_eq!(
            r.response_code(),
            ResponseCode::FormErr,
            "one question per query"
        );
    }

    #[test]
    fn answers_fit_the_clients_udp_size() {
        let ips = (0..100u8).map(|i| IpAddr::from([10, 0, 0, i]));
        let table = table("many.example", ips);
        let plain = query("many.example.", RecordType::A);
        let mut edns = plain.clone();
        let mut offer = Edns::new();
        offer.set_max_payload(4096);
        edns.set_edns(offer);
        let sized = |q: &Message, max_payload| {
            let bytes = finish(q, answered(answer(q, &table, false)), max_payload);
            (bytes.len(), Message::from_vec(&bytes).unwrap())
        };
        let (len, r) = sized(&plain, 1232);
        assert!(
            len <= 512 && r.truncated() && !r.answers().is_empty(),
            "{len}"
        );
        assert!(r.extensions().is_none(), "no OPT for a client without EDNS");
        let (len, r) = sized(&edns, 1232);
        assert!(len <= 1232 && len > 512 && r.truncated(), "{len}");
        assert_eq!(r.extensions().as_ref().map(Edns::max_payload), Some(1232));
        let (_, r) = sized(&edns, 4096);
        assert_eq!((r.answers().len(), r.truncated()), (100, false));
    }

    /// A DNS server on loopback forwarding to a socket the test answers from.
    async fn forwarding_server(max_forwarded: usize) -> (SocketAddr, UdpSocket, UdpSocket) {
        let upstream = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        let config = DnsConfig {
            listen: Some(addr),
            upstream: Some(upstream.local_addr().unwrap()),
            max_forwarded,
            ..DnsConfig::default()
        };
        tokio::spawn(serve(server, Arc::new(table("x", [])), config));
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        (addr, upstream, client)
    }

    async fn receive(socket: &UdpSocket, wait: Duration) -> Option<(Message, SocketAddr)> {
        let mut buf = [0u8; 4096];
        let (n, from) = tokio::time::timeout(wait, socket.recv_from(&mut buf))
            .await
            .ok()?
            .unwrap();
        Some((Message::from_vec(&buf[..n]).unwrap(), from))
    }

    async fn ask(client: &UdpSocket, server: SocketAddr, id: u16) {
        let mut q = query(&format!("q{id}.example."), RecordType::A);
        q.set_id(id);
        client.send_to(&q.to_vec().unwrap(), server).await.unwrap();
    }

    #[tokio::test]
    async fn forwarding_is_bounded_and_beyond_it_answered_servfail() {
        let (server, upstream, client) = forwarding_server(2).await;
        for id in 1..=3 {
            ask(&client, server, id).await;
        }
        let wait = Duration::from_millis(500);
        let mut forwarded = Vec::new();
        while let Some(q) = receive(&upstream, wait).await {
            forwarded.push(q);
        }
        let ids: Vec<u16> = forwarded.iter().map(|(q, _)| q.id()).collect();
        assert_eq!(ids.len(), 2, "two forwarded at once, not three: {ids:?}");
        let (refused, _) = receive(&client, wait).await.expect("an answer at once");
        assert_eq!(refused.response_code(), ResponseCode::ServFail);
        assert!(!ids.contains(&refused.id()));
        // the upstream answers; both answers reach the client and free their places
        for (q, relay) in &forwarded {
            let mut a = response_to(q, true);
            a.set_response_code(ResponseCode::NXDomain);
            upstream.send_to(&a.to_vec().unwrap(), relay).await.unwrap();
        }
        for _ in 0..2 {
            let (a, _) = receive(&client, wait).await.expect("relayed");
            assert_eq!(a.response_code(), ResponseCode::NXDomain);
            assert!(ids.contains(&a.id()));
        }
        ask(&client, server, 4).await;
        let (q, _) = receive(&upstream, wait).await.expect("forwarded again");
        assert_eq!(q.id(), 4);
        // unanswered upstream: SERVFAIL after the timeout, not silence
        let (a, _) = receive(&client, UPSTREAM_TIMEOUT + wait)
            .await
            .expect("SERVFAIL");
        assert_eq!((a.id(), a.response_code()), (4, ResponseCode::ServFail));
    }

    #[tokio::test]
    async fn long_queries_are_dropped_unread() {
        let (server, _upstream, client) = forwarding_server(2).await;
        let label = "a".repeat(60);
        let mut long = Message::new();
        long.set_id(9);
        for i in 0..3 {
            let name = format!("{label}.{label}.{label}.q{i}.example.");
            long.add_query(Query::query(
                Name::from_ascii(&name).unwrap(),
                RecordType::A,
            ));
        }
        let long = long.to_vec().unwrap();
        assert!(long.len() > MAX_QUERY);
        client.send_to(&long, server).await.unwrap();
        assert!(
            receive(&client, Duration::from_millis(300)).await.is_none(),
            "no answer to a query longer than {MAX_QUERY} octets"
        );
        let mut q = query("x.", RecordType::A);
        q.set_id(10);
        client.send_to(&q.to_vec().unwrap(), server).await.unwrap();
        let (a, _) = receive(&client, Duration::from_secs(2))
            .await
            .expect("still serving");
        assert_eq!(a.id(), 10);
    }
}

//! The MEP's DNS server: answers the domains of ACTIVE DNS rules of READY application instances
//! (A for IPv4 rules, AAAA for IPv6) authoritatively, and forwards every other query to an
//! upstream resolver when one is configured (NXDOMAIN otherwise).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{RData, Record, RecordType};
use tokio::net::UdpSocket;

use crate::platform::{DnsAnswer, DnsTable, normalize_domain};

/// Largest UDP message handled.
const MAX_UDP: usize = 4096;
/// How long to wait for the upstream resolver.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// What to do with one query.
enum Reply {
    Answer(Vec<u8>),
    Forward,
    Ignore,
}

fn answer(query: &Message, table: &DnsTable, forward: bool) -> Reply {
    if query.message_type() != MessageType::Query {
        return Reply::Ignore;
    }
    let mut response = Message::new();
    response
        .set_id(query.id())
        .set_message_type(MessageType::Response)
        .set_op_code(query.op_code())
        .set_recursion_desired(query.recursion_desired())
        .set_recursion_available(forward);
    let Some(question) = query
        .queries()
        .first()
        .filter(|_| query.op_code() == OpCode::Query)
    else {
        response.set_response_code(ResponseCode::NotImp);
        return Reply::Answer(response.to_vec().unwrap_or_default());
    };
    response.add_query(question.clone());
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
        return Reply::Answer(response.to_vec().unwrap_or_default());
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
    Reply::Answer(response.to_vec().unwrap_or_default())
}

async fn forward(socket: Arc<UdpSocket>, upstream: SocketAddr, query: Vec<u8>, client: SocketAddr) {
    let bind: SocketAddr = if upstream.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let result = async {
        let relay = UdpSocket::bind(bind).await?;
        relay.send_to(&query, upstream).await?;
        let mut buf = vec![0u8; MAX_UDP];
        let (n, _) = tokio::time::timeout(UPSTREAM_TIMEOUT, relay.recv_from(&mut buf)).await??;
        socket.send_to(&buf[..n], client).await?;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
    }
    .await;
    if let Err(e) = result {
        tracing::debug!(%client, %upstream, error = %e, "forwarded DNS query failed");
    }
}

/// Serves DNS on `socket` until the task is dropped.
pub async fn serve(socket: UdpSocket, table: Arc<DnsTable>, upstream: Option<SocketAddr>) {
    let socket = Arc::new(socket);
    let mut buf = vec![0u8; MAX_UDP];
    loop {
        let (n, client) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "DNS receive failed");
                continue;
            }
        };
        let packet = &buf[..n];
        let Ok(query) = Message::from_vec(packet) else {
            tracing::debug!(%client, "malformed DNS query ignored");
            continue;
        };
        match answer(&query, &table, upstream.is_some()) {
            Reply::Answer(bytes) => {
                if let Err(e) = socket.send_to(&bytes, client).await {
                    tracing::debug!(%client, error = %e, "DNS send failed");
                }
            }
            Reply::Forward => {
                if let Some(upstream) = upstream {
                    tokio::spawn(forward(socket.clone(), upstream, packet.to_vec(), client));
                }
            }
            Reply::Ignore => {}
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

    #[test]
    fn answers_a_only_for_ipv4_and_nxdomain_for_unknown() {
        let table: DnsTable = RwLock::new(Arc::new(HashMap::from([(
            "cdn.example.com".to_owned(),
            vec![DnsAnswer {
                ip: "10.1.2.3".parse().unwrap(),
                ttl: 30,
            }],
        )])));
        let Reply::Answer(bytes) = answer(&query("CDN.example.com.", RecordType::A), &table, false)
        else {
            panic!()
        };
        let r = Message::from_vec(&bytes).unwrap();
        assert_eq!(
            (r.id(), r.answers().len(), r.answers()[0].ttl()),
            (7, 1, 30)
        );
        let Reply::Answer(bytes) =
            answer(&query("cdn.example.com.", RecordType::AAAA), &table, false)
        else {
            panic!()
        };
        let r = Message::from_vec(&bytes).unwrap();
        assert_eq!(
            (r.response_code(), r.answers().len()),
            (ResponseCode::NoError, 0)
        );
        let Reply::Answer(bytes) =
            answer(&query("other.example.com.", RecordType::A), &table, false)
        else {
            panic!()
        };
        assert_eq!(
            Message::from_vec(&bytes).unwrap().response_code(),
            ResponseCode::NXDomain
        );
        assert!(matches!(
            answer(&query("other.example.com.", RecordType::A), &table, true),
            Reply::Forward
        ));
    }
}

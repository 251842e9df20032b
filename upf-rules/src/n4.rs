//! The CP side of N4 towards one UPF: association setup and release, heartbeats that detect a
//! UPF restart (a new Recovery Time Stamp) and then re-associate and re-install every session,
//! and one PFCP session per application instance carrying its compiled traffic rules (after
//! the PFDs of the applications its rules detect by URI).
//!
//! Requests are retransmitted every `t1` up to `n1` times (TS 29.244 6.4) and matched to
//! responses by sequence number; the UPF's own heartbeat requests are answered.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use api_specs::mp1::app_support::TrafficRule;
use tokio::net::UdpSocket;
use tokio::sync::oneshot;
use tracing::Instrument;

use crate::compile::{CompileError, Plan, Steering, compile};
use crate::pfcp::PfcpError;
use crate::pfcp::ie::{Address, Ies, types};
use crate::pfcp::message::{Message, MessageType, cause};

/// Seconds between the NTP epoch (1900) and the Unix epoch.
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// N4 settings.
#[derive(Debug, Clone)]
pub struct N4Config {
    /// Local address to bind (port 8805 in production).
    pub local: SocketAddr,
    /// The UPF's PFCP address.
    pub upf: SocketAddr,
    /// Retransmission timer T1.
    pub t1: Duration,
    /// Retransmissions N1.
    pub n1: u32,
    /// Where steered traffic goes.
    pub steering: Steering,
}

/// An N4 failure.
#[derive(Debug, thiserror::Error)]
pub enum N4Error {
    /// Socket failure.
    #[error("N4 socket: {0}")]
    Io(#[from] std::io::Error),
    /// No response after N1 retransmissions.
    #[error("UPF {0} did not answer {1:?}")]
    Timeout(SocketAddr, MessageType),
    /// The UPF rejected a request.
    #[error("UPF rejected {0:?} with cause {1}")]
    Rejected(MessageType, u8),
    /// The rules cannot be compiled.
    #[error(transparent)]
    Compile(#[from] CompileError),
    /// The UPF answered without a mandatory IE.
    #[error("UPF response to {0:?} lacks {1}")]
    Incomplete(MessageType, &'static str),
    /// A request cannot be encoded (too many rules for one datagram).
    #[error("cannot send {0:?}: {1}")]
    Encode(MessageType, PfcpError),
}

/// What a heartbeat found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heartbeat {
    /// The UPF answered with the Recovery Time Stamp it had.
    Alive,
    /// The UPF restarted; the association and every session were re-installed.
    Restarted,
}

#[derive(Debug, Clone)]
struct Session {
    cp_seid: u64,
    up_seid: u64,
    rules: Vec<TrafficRule>,
    plan: Plan,
}

/// The N4 client of one UPF.
pub struct N4Client {
    config: N4Config,
    socket: UdpSocket,
    node: Address,
    recovery: u32,
    sequence: AtomicU32,
    next_seid: AtomicU64,
    pending: Mutex<HashMap<u32, oneshot::Sender<Message>>>,
    upf_recovery: Mutex<Option<u32>>,
    sessions: tokio::sync::Mutex<BTreeMap<String, Session>>,
}

impl std::fmt::Debug for N4Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("N4Client")
            .field("upf", &self.config.upf)
            .finish_non_exhaustive()
    }
}

fn ntp_now() -> u32 {
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    u32::try_from((unix + NTP_UNIX_OFFSET) & 0xffff_ffff).unwrap_or(0)
}

impl N4Client {
    /// Binds the socket, starts answering the UPF and sets up the association.
    pub async fn connect(config: N4Config) -> Result<Arc<Self>, N4Error> {
        let socket = UdpSocket::bind(config.local).await?;
        let local = socket.local_addr()?;
        let client = Arc::new(Self {
            config,
            socket,
            node: Address::from(local.ip()),
            recovery: ntp_now(),
            sequence: AtomicU32::new(1),
            next_seid: AtomicU64::new(1),
            pending: Mutex::new(HashMap::new()),
            upf_recovery: Mutex::new(None),
            sessions: tokio::sync::Mutex::new(BTreeMap::new()),
        });
        tokio::spawn(Self::receive(Arc::downgrade(&client)));
        client.associate().await?;
        Ok(client)
    }

    /// Reads datagrams until the client is dropped: responses complete their requests, the
    /// UPF's heartbeat requests are answered.
    async fn receive(client: std::sync::Weak<Self>) {
        let mut buf = vec![0u8; 65_536];
        loop {
            let Some(this) = client.upgrade() else { return };
            let received =
                tokio::time::timeout(Duration::from_millis(500), this.socket.recv_from(&mut buf))
                    .await;
            let (n, peer) = match received {
                Err(_) => continue,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "N4 receive failed");
                    continue;
                }
                Ok(Ok(r)) => r,
            };
            let message = match Message::decode(&buf[..n]) {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "undecodable PFCP datagram");
                    continue;
                }
            };
            if message.message_type == MessageType::HeartbeatRequest {
                let mut ies = Ies::new();
                ies.recovery_time_stamp(this.recovery);
                let answer = Message::new(MessageType::HeartbeatResponse, 0, message.sequence, ies);
                if let Ok(answer) = answer.encode() {
                    let _ = this.socket.send_to(&answer, peer).await;
                }
            } else if !message.message_type.is_request() {
                let waiter = this
                    .pending
                    .lock()
                    .ok()
                    .and_then(|mut p| p.remove(&message.sequence));
                if let Some(waiter) = waiter {
                    let _ = waiter.send(message);
                }
            }
        }
    }

    /// Sends a request, retransmitting every T1 up to N1 times, and returns the response; in a
    /// client span named after the request (heartbeats at debug level, the rest at info).
    async fn request(
        &self,
        message_type: MessageType,
        seid: u64,
        ies: Ies,
    ) -> Result<Message, N4Error> {
        let name = format!("PFCP {message_type:?}");
        let upf = self.config.upf;
        let span = if message_type == MessageType::HeartbeatRequest {
            tracing::debug_span!("PFCP request", otel.name = %name, otel.kind = "client", server.address = %upf)
        } else {
            tracing::info_span!("PFCP request", otel.name = %name, otel.kind = "client", server.address = %upf, pfcp.seid = seid)
        };
        self.exchange(message_type, seid, ies)
            .instrument(span)
            .await
    }

    async fn exchange(
        &self,
        message_type: MessageType,
        seid: u64,
        ies: Ies,
    ) -> Result<Message, N4Error> {
        let sequence = self.sequence.fetch_add(1, Ordering::Relaxed) & 0x00ff_ffff;
        let bytes = Message::new(message_type, seid, sequence, ies)
            .encode()
            .map_err(|e| N4Error::Encode(message_type, e))?;
        let (tx, mut rx) = oneshot::channel();
        if let Ok(mut pending) = self.pending.lock() {
            pending.insert(sequence, tx);
        }
        for _ in 0..=self.config.n1 {
            self.socket.send_to(&bytes, self.config.upf).await?;
            match tokio::time::timeout(self.config.t1, &mut rx).await {
                Ok(Ok(response)) => return Ok(response),
                Ok(Err(_)) => break,
                Err(_) => tracing::debug!(?message_type, sequence, "PFCP retransmission"),
            }
        }
        if let Ok(mut pending) = self.pending.lock() {
            pending.remove(&sequence);
        }
        Err(N4Error::Timeout(self.config.upf, message_type))
    }

    fn accepted(response: &Message) -> Result<(), N4Error> {
        match response.cause() {
            Some(cause::REQUEST_ACCEPTED) => Ok(()),
            Some(c) => Err(N4Error::Rejected(response.message_type, c)),
            None => Err(N4Error::Incomplete(response.message_type, "Cause")),
        }
    }

    /// PFCP Association Setup; remembers the UPF's Recovery Time Stamp.
    pub async fn associate(&self) -> Result<(), N4Error> {
        let mut ies = Ies::new();
        ies.node_id(self.node).recovery_time_stamp(self.recovery);
        let response = self
            .request(MessageType::AssociationSetupRequest, 0, ies)
            .await?;
        Self::accepted(&response)?;
        let stamp = response
            .find(types::RECOVERY_TIME_STAMP)
            .and_then(|ie| ie.uint())
            .ok_or(N4Error::Incomplete(
                MessageType::AssociationSetupResponse,
                "Recovery Time Stamp",
            ))?;
        if let Ok(mut r) = self.upf_recovery.lock() {
            *r = u32::try_from(stamp).ok();
        }
        tracing::info!(upf = %self.config.upf, "PFCP association set up");
        Ok(())
    }

    /// PFCP Association Release.
    pub async fn release(&self) -> Result<(), N4Error> {
        let mut ies = Ies::new();
        ies.node_id(self.node);
        let response = self
            .request(MessageType::AssociationReleaseRequest, 0, ies)
            .await?;
        Self::accepted(&response)
    }

    /// One heartbeat; a changed Recovery Time Stamp means the UPF restarted and lost its
    /// sessions, so the association and every session are set up again.
    pub async fn heartbeat(&self) -> Result<Heartbeat, N4Error> {
        let mut ies = Ies::new();
        ies.recovery_time_stamp(self.recovery);
        let response = self.request(MessageType::HeartbeatRequest, 0, ies).await?;
        let stamp = response
            .find(types::RECOVERY_TIME_STAMP)
            .and_then(|ie| ie.uint())
            .and_then(|s| u32::try_from(s).ok());
        let known = self.upf_recovery.lock().ok().and_then(|r| *r);
        if stamp.is_none() || stamp == known {
            return Ok(Heartbeat::Alive);
        }
        tracing::warn!(upf = %self.config.upf, "UPF restarted: re-installing its sessions");
        self.associate().await?;
        let mut sessions = self.sessions.lock().await;
        for (id, session) in sessions.iter_mut() {
            let (up_seid, plan) = self.establish(session.cp_seid, &session.rules).await?;
            session.up_seid = up_seid;
            session.plan = plan;
            tracing::info!(app_instance_id = %id, "session re-established");
        }
        Ok(Heartbeat::Restarted)
    }

    /// Provisions the PFDs of the applications `plan` detects (PFD Management, TS 29.244
    /// 6.2.5): each application with its URLs, before a session refers to it.
    async fn provision_pfds(&self, plan: &Plan) -> Result<(), N4Error> {
        if plan.applications.is_empty() {
            return Ok(());
        }
        let mut ies = Ies::new();
        for (id, urls) in &plan.applications {
            ies.application_pfds(id, urls);
        }
        let response = self
            .request(MessageType::PfdManagementRequest, 0, ies)
            .await?;
        Self::accepted(&response)
    }

    async fn establish(&self, cp_seid: u64, rules: &[TrafficRule]) -> Result<(u64, Plan), N4Error> {
        let plan = compile(rules, &self.config.steering, 1, 1)?;
        self.provision_pfds(&plan).await?;
        let mut ies = Ies::with_capacity(2048);
        ies.node_id(self.node).f_seid(cp_seid, self.node);
        plan.write_create(&mut ies);
        let response = self
            .request(MessageType::SessionEstablishmentRequest, 0, ies)
            .await?;
        Self::accepted(&response)?;
        let up_seid = response
            .find(types::F_SEID)
            .and_then(|ie| ie.seid())
            .ok_or(N4Error::Incomplete(
                MessageType::SessionEstablishmentResponse,
                "UP F-SEID",
            ))?;
        Ok((up_seid, plan))
    }

    /// Installs the traffic rules of an application instance: establishes its session, or
    /// modifies it (the previous rules removed, the new ones created under fresh ids).
    pub async fn apply(&self, app_instance_id: &str, rules: &[TrafficRule]) -> Result<(), N4Error> {
        let mut sessions = self.sessions.lock().await;
        match sessions.get_mut(app_instance_id) {
            None => {
                let cp_seid = self.next_seid.fetch_add(1, Ordering::Relaxed);
                let (up_seid, plan) = self.establish(cp_seid, rules).await?;
                sessions.insert(
                    app_instance_id.to_owned(),
                    Session {
                        cp_seid,
                        up_seid,
                        rules: rules.to_vec(),
                        plan,
                    },
                );
            }
            Some(session) => {
                let (pdr, far) = session.plan.next_ids().unwrap_or((1, 1));
                let plan = compile(rules, &self.config.steering, pdr, far)?;
                self.provision_pfds(&plan).await?;
                let mut ies = Ies::with_capacity(2048);
                session.plan.write_remove(&mut ies);
                plan.write_create(&mut ies);
                let response = self
                    .request(
                        MessageType::SessionModificationRequest,
                        session.up_seid,
                        ies,
                    )
                    .await?;
                Self::accepted(&response)?;
                session.rules = rules.to_vec();
                session.plan = plan;
            }
        }
        Ok(())
    }

    /// Deletes the session of an application instance (nothing to do when it has none).
    pub async fn remove(&self, app_instance_id: &str) -> Result<(), N4Error> {
        let mut sessions = self.sessions.lock().await;
        let Some(session) = sessions.get(app_instance_id) else {
            return Ok(());
        };
        let response = self
            .request(
                MessageType::SessionDeletionRequest,
                session.up_seid,
                Ies::new(),
            )
            .await?;
        match response.cause() {
            // The UPF no longer knows it: gone either way.
            Some(cause::REQUEST_ACCEPTED | cause::SESSION_CONTEXT_NOT_FOUND) => {
                sessions.remove(app_instance_id);
                Ok(())
            }
            Some(c) => Err(N4Error::Rejected(response.message_type, c)),
            None => Err(N4Error::Incomplete(response.message_type, "Cause")),
        }
    }

    /// The application instances with a session, and their UP SEIDs.
    pub async fn sessions(&self) -> BTreeMap<String, u64> {
        self.sessions
            .lock()
            .await
            .iter()
            .map(|(id, s)| (id.clone(), s.up_seid))
            .collect()
    }
}

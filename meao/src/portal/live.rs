//! Live updates for the portal: the state changes the event outbox records, as server-sent
//! events (`GET /portal/events`, one stream per open page), and the recent ones as the activity
//! feed (`GET /portal/activity`).
//!
//! Each replica reads the outbox rows from the store, so a page sees the changes every replica
//! made: one query per interval, shared by all the replica's streams (and none while no stream
//! is open). It re-reads the last [`WINDOW_MS`] each time and skips what it already sent, so an
//! event whose transaction commits after a later one's (PostgreSQL numbers nothing in commit
//! order), or that a replica with a slightly late clock recorded, is still seen once.
//!
//! Streams are bounded: a cap per session and in total, a keep-alive comment while quiet, and a
//! client that falls [`BACKLOG`] changes behind is dropped (its page reconnects and reloads)
//! instead of buffered for; a stream ends when its session does and when the MEAO stops.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::broadcast;

use crate::store::{ActivityRow, Store, StoreError};

/// How far back each poll re-reads (ms): longer than a transaction takes from its timestamp to
/// its commit plus the clock skew between replicas.
pub const WINDOW_MS: i64 = 5_000;
/// Changes a stream may fall behind before it is dropped.
pub const BACKLOG: usize = 256;
/// Rows one poll reads at most.
const BATCH: i64 = 1_000;
/// How often a stream checks that its session still lasts.
const SESSION_CHECK: Duration = Duration::from_secs(60);
/// How often a quiet stream sends a keep-alive comment.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// A state change as the portal shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    /// The event's id.
    pub id: String,
    /// What changed: `app_package`, `app_instance`, `lcm_op_occ` or `site`.
    pub kind: String,
    /// `changed` or `deleted`.
    pub change: String,
    /// The resource's id.
    pub resource_id: String,
    /// Its state after the change (as the event carries it).
    pub data: Value,
    /// Who made the change (`portal:<user>` or an API client's id); `None` for the MEAO's own
    /// work.
    pub actor: Option<String>,
    /// When (Unix ms).
    pub time: i64,
}

impl Change {
    /// The change an outbox row records; `None` for a row that is not one of ours.
    fn from_row(row: &ActivityRow) -> Option<Self> {
        let body: Value = serde_json::from_str(&row.body).ok()?;
        let kind_change = body
            .get("type")?
            .as_str()?
            .strip_prefix("io.mecplane.meao.")?;
        let (kind, change) = kind_change.rsplit_once('.')?;
        Some(Self {
            id: row.id.clone(),
            kind: kind.to_owned(),
            change: change.to_owned(),
            resource_id: body.get("subject")?.as_str()?.to_owned(),
            data: body.get("data").cloned().unwrap_or(Value::Null),
            actor: row.actor.clone(),
            time: row.created_at,
        })
    }
}

/// What streams receive.
#[derive(Debug, Clone)]
enum Signal {
    Change(Arc<Change>),
    /// The MEAO stops.
    End,
}

/// Where the poller is in the outbox.
#[derive(Debug, Default)]
struct Cursor {
    /// Re-read from here (Unix ms).
    since: i64,
    /// The events read at or after `since`, by id, with their time.
    seen: HashMap<String, i64>,
}

/// Open streams: per session key and in total.
#[derive(Debug, Default)]
struct Open {
    per_session: HashMap<String, usize>,
    total: usize,
}

/// The live updates of one replica.
#[derive(Debug)]
pub struct Live {
    store: Store,
    sender: broadcast::Sender<Signal>,
    open: Mutex<Open>,
    max_streams: usize,
    max_per_session: usize,
    poll: Duration,
}

/// An open stream's place in the caps, given back when the stream ends.
#[derive(Debug)]
struct Slot {
    live: Arc<Live>,
    key: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.live.open.lock().unwrap_or_else(|e| e.into_inner());
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.per_session.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                open.per_session.remove(&self.key);
            }
        }
    }
}

/// Why a stream was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The session has its cap of streams open.
    #[error("this session has {0} live update streams open already")]
    Session(usize),
    /// The replica has its cap of streams open.
    #[error("the MEAO has {0} live update streams open already")]
    Total(usize),
}

impl Live {
    /// Live updates from `store`'s outbox, read every `poll`, with at most `max_streams` streams
    /// open and `max_per_session` per session.
    pub fn new(store: Store, poll: Duration, max_streams: usize, max_per_session: usize) -> Self {
        Self {
            store,
            sender: broadcast::channel(BACKLOG).0,
            open: Mutex::default(),
            max_streams: max_streams.max(1),
            max_per_session: max_per_session.max(1),
            poll: poll.max(Duration::from_millis(50)),
        }
    }

    /// The `limit` most recent changes before `before` (Unix ms), newest first.
    pub async fn recent(&self, before: i64, limit: i64) -> Result<Vec<Change>, StoreError> {
        let rows = self.store.events_recent(before, limit).await?;
        Ok(rows.iter().filter_map(Change::from_row).collect())
    }

    /// Takes a slot for a stream of the session `key` and subscribes it.
    fn open(self: &Arc<Self>, key: &str) -> Result<(Slot, broadcast::Receiver<Signal>), Refused> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.total >= self.max_streams {
            return Err(Refused::Total(self.max_streams));
        }
        let n = open.per_session.entry(key.to_owned()).or_default();
        if *n >= self.max_per_session {
            return Err(Refused::Session(self.max_per_session));
        }
        *n += 1;
        open.total += 1;
        Ok((
            Slot {
                live: self.clone(),
                key: key.to_owned(),
            },
            self.sender.subscribe(),
        ))
    }

    /// Reads what the outbox recorded since the last poll and sends it to every stream; only
    /// while a stream is open (the first poll after a quiet spell starts [`WINDOW_MS`] back).
    async fn poll_once(&self, cursor: &mut Option<Cursor>, now: i64) -> Result<(), StoreError> {
        if self.sender.receiver_count() == 0 {
            *cursor = None;
            return Ok(());
        }
        let c = cursor.get_or_insert_with(|| Cursor {
            since: now - WINDOW_MS,
            seen: HashMap::new(),
        });
        let rows = self.store.events_since(c.since, BATCH).await?;
        let full = usize::try_from(BATCH).is_ok_and(|b| rows.len() >= b);
        let last = rows.last().map(|r| r.created_at);
        for row in rows {
            if c.seen.insert(row.id.clone(), row.created_at).is_some() {
                continue;
            }
            match Change::from_row(&row) {
                Some(change) => {
                    // no stream open any more is fine: nothing to send to
                    let _ = self.sender.send(Signal::Change(Arc::new(change)));
                }
                None => tracing::warn!(event = %row.id, "an outbox row the portal cannot read"),
            }
        }
        // a full batch: go on from its last row (past it if the whole batch had one time)
        let next = match last {
            Some(t) if full => t.max(c.since + 1),
            _ => now - WINDOW_MS,
        };
        c.since = c.since.max(next);
        let since = c.since;
        c.seen.retain(|_, t| *t >= since);
        Ok(())
    }

    /// Polls until `stopped`, then ends every stream.
    pub async fn run(self: Arc<Self>, stopped: impl Future<Output = ()>) {
        let mut cursor = None;
        let mut tick = tokio::time::interval(self.poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(stopped);
        loop {
            tokio::select! {
                () = &mut stopped => break,
                _ = tick.tick() => {
                    if let Err(e) = self.poll_once(&mut cursor, server_kit::unix_millis_now()).await {
                        tracing::warn!(error = %e, "portal live updates: outbox not read");
                    }
                }
            }
        }
        let _ = self.sender.send(Signal::End);
    }
}

/// What a stream sends next.
enum Next {
    /// An event, and more may follow.
    Send(Event),
    /// The last event.
    Last(Event),
}

/// The server-sent events of one stream for the session of `token`: `change` events (the JSON
/// of a [`Change`], the event's id as its SSE id), and an `ended` event (`lagged`,
/// `signed-out` or `stopping`) before the stream ends by itself. Refused beyond the caps.
pub fn stream(
    portal: &Arc<super::Portal>,
    token: &str,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>> + use<>>, Refused> {
    let key = server_kit::auth::secret_digest_b64(token);
    let (slot, receiver) = portal.live.open(&key)?;
    struct State {
        portal: Arc<super::Portal>,
        token: String,
        receiver: broadcast::Receiver<Signal>,
        next_check: tokio::time::Instant,
        ended: bool,
        _slot: Slot,
    }
    let state = State {
        portal: portal.clone(),
        token: token.to_owned(),
        receiver,
        next_check: tokio::time::Instant::now() + SESSION_CHECK,
        ended: false,
        _slot: slot,
    };
    let ended = |why: &str| Next::Last(Event::default().event("ended").data(why));
    let events = futures::stream::unfold(state, move |mut s| async move {
        if s.ended {
            return None;
        }
        let next = loop {
            tokio::select! {
                received = s.receiver.recv() => break match received {
                    Ok(Signal::Change(change)) => match Event::default()
                        .event("change")
                        .id(change.id.clone())
                        .json_data(&*change)
                    {
                        Ok(event) => Next::Send(event),
                        Err(e) => {
                            tracing::warn!(error = %e, "portal live update not serialized");
                            continue;
                        }
                    },
                    Ok(Signal::End) | Err(broadcast::error::RecvError::Closed) => ended("stopping"),
                    Err(broadcast::error::RecvError::Lagged(_)) => ended("lagged"),
                },
                () = tokio::time::sleep_until(s.next_check) => {
                    s.next_check = tokio::time::Instant::now() + SESSION_CHECK;
                    match s.portal.sessions.get(&s.token, super::now()).await {
                        Ok(Some(_)) => continue,
                        Ok(None) => break ended("signed-out"),
                        // the store is away for a moment: check again later
                        Err(_) => continue,
                    }
                }
            }
        };
        let event = match next {
            Next::Send(event) => event,
            Next::Last(event) => {
                s.ended = true;
                event
            }
        };
        Some((Ok(event), s))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use server_kit::testing::{Db, fresh_database, pg_admin_url};

    use crate::store::{ACTOR, Events, SiteRow};

    /// Two replicas' stores on one SQLite database, recording events (kept while the
    /// directory lives).
    async fn two_replicas() -> (tempfile::TempDir, Store, Store) {
        two_replicas_on(Db::Sqlite).await
    }

    /// Two replicas' stores on one fresh `db` database, recording events.
    async fn two_replicas_on(db: Db) -> (tempfile::TempDir, Store, Store) {
        let dir = tempfile::tempdir().unwrap();
        let url = fresh_database(db, "live", dir.path()).await;
        let a = Store::connect(&url).await.unwrap();
        let b = Store::connect(&url).await.unwrap();
        (
            dir,
            a.with_event_outbox(Events::Recorded),
            b.with_event_outbox(Events::Recorded),
        )
    }

    async fn add_site(store: &Store, id: &str) {
        let row = SiteRow {
            id: id.into(),
            spec: "{}".into(),
            healthy: true,
            free_capacity: None,
            last_error: None,
            refreshed_at: 0,
        };
        ACTOR
            .scope("portal:admin".into(), store.site_upsert(&row))
            .await
            .unwrap();
    }

    fn received(rx: &mut broadcast::Receiver<Signal>) -> Vec<Change> {
        let mut out = Vec::new();
        while let Ok(signal) = rx.try_recv() {
            if let Signal::Change(c) = signal {
                out.push((*c).clone());
            }
        }
        out
    }

    /// On SQLite, and on PostgreSQL when it is configured (required under `CI=true`).
    #[tokio::test]
    async fn a_replica_sends_each_change_every_replica_records_once() {
        let mut dbs = vec![Db::Sqlite];
        if pg_admin_url().is_some() {
            dbs.push(Db::Postgres);
        }
        for db in dbs {
            each_change_once(db).await;
        }
    }

    async fn each_change_once(db: Db) {
        let (_dir, a, b) = two_replicas_on(db).await;
        let live = Arc::new(Live::new(b.clone(), Duration::from_secs(1), 10, 2));
        let mut cursor = None;
        let now = server_kit::unix_millis_now();
        // nobody listens: no query, no cursor
        add_site(&a, "early").await;
        live.poll_once(&mut cursor, now).await.unwrap();
        assert!(cursor.is_none());

        let (_slot, mut rx) = live.open("session").unwrap();
        add_site(&a, "paris-1").await;
        live.poll_once(&mut cursor, server_kit::unix_millis_now())
            .await
            .unwrap();
        let first = received(&mut rx);
        let ids: Vec<_> = first.iter().map(|c| c.resource_id.as_str()).collect();
        // the first poll after a quiet spell starts a window back
        assert_eq!(ids, ["early", "paris-1"]);
        let paris = &first[1];
        assert_eq!(paris.kind, "site");
        assert_eq!(paris.change, "changed");
        assert_eq!(paris.actor.as_deref(), Some("portal:admin"));
        assert_eq!(paris.data["healthy"], true);

        // another replica's change, and one whose transaction committed late (its time is
        // before what was already read): each is sent once, nothing twice
        b.site_observed("paris-1", false, None, Some("down"), now - 2_000)
            .await
            .unwrap();
        a.site_delete("early", false).await.unwrap();
        live.poll_once(&mut cursor, server_kit::unix_millis_now())
            .await
            .unwrap();
        let second = received(&mut rx);
        let seen: Vec<_> = second
            .iter()
            .map(|c| (c.resource_id.as_str(), c.change.as_str(), c.actor.is_none()))
            .collect();
        assert_eq!(
            seen,
            [("paris-1", "changed", true), ("early", "deleted", true)]
        );
        live.poll_once(&mut cursor, server_kit::unix_millis_now())
            .await
            .unwrap();
        assert_eq!(received(&mut rx), []);

        // the activity feed: newest first (the late one by its time), with who did it
        let recent = live.recent(i64::MAX, 10).await.unwrap();
        let feed: Vec<_> = recent
            .iter()
            .map(|c| (c.resource_id.as_str(), c.actor.as_deref()))
            .collect();
        assert_eq!(
            feed,
            [
                ("early", None),
                ("paris-1", Some("portal:admin")),
                ("early", Some("portal:admin")),
                ("paris-1", None)
            ]
        );
    }

    #[tokio::test]
    async fn streams_are_capped_per_session_and_in_total() {
        let (_dir, a, _) = two_replicas().await;
        let live = Arc::new(Live::new(a, Duration::from_secs(1), 3, 2));
        let s1 = live.open("s1").unwrap();
        let s1b = live.open("s1").unwrap();
        assert_eq!(live.open("s1").unwrap_err(), Refused::Session(2));
        let s2 = live.open("s2").unwrap();
        assert_eq!(live.open("s3").unwrap_err(), Refused::Total(3));
        drop(s1);
        let again = live.open("s1").unwrap();
        drop((s1b, s2, again));
        let open = live.open.lock().unwrap();
        assert_eq!((open.total, open.per_session.len()), (0, 0));
    }

    /// A portal with one viewer, serving its routes on a loopback port; a session of it.
    async fn serving() -> (tempfile::TempDir, Arc<super::super::Portal>, String, String) {
        let (dir, store, _) = two_replicas().await;
        let config = super::super::PortalConfig {
            users: vec![super::super::PortalUser {
                name: "v".into(),
                role: super::super::session::Role::Viewer,
                password_hash: super::super::hash_password("pw").unwrap(),
            }],
            ..super::super::PortalConfig::default()
        };
        let portal = Arc::new(super::super::Portal::new(&config, store, false).unwrap());
        let (token, _) = portal
            .sessions
            .create(
                "v",
                super::super::session::Role::Viewer,
                super::super::now(),
            )
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = super::super::router(portal.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (dir, portal, token, url)
    }

    async fn open_stream(url: &str, token: &str) -> reqwest::Response {
        reqwest::Client::new()
            .get(format!("{url}/portal/events"))
            .header("cookie", format!("mecplane_session={token}"))
            .send()
            .await
            .unwrap()
    }

    /// The body of `response` until it ends (within 10 s).
    async fn rest(mut response: reqwest::Response) -> String {
        let mut body = String::new();
        tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(chunk) = response.chunk().await.unwrap() {
                body.push_str(&String::from_utf8_lossy(&chunk));
            }
        })
        .await
        .expect("the stream ends");
        body
    }

    #[tokio::test]
    async fn a_stream_needs_a_session_sends_changes_and_drops_a_client_that_falls_behind() {
        let (_dir, portal, token, url) = serving().await;
        assert_eq!(open_stream(&url, "forged").await.status(), 401);

        let mut stream = open_stream(&url, &token).await;
        assert_eq!(stream.status(), 200);
        assert_eq!(
            stream.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        add_site(&portal.live.store, "paris-1").await;
        let mut cursor = None;
        portal
            .live
            .poll_once(&mut cursor, server_kit::unix_millis_now())
            .await
            .unwrap();
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let text = String::from_utf8_lossy(&chunk);
        assert!(text.starts_with("event: change\n"), "{text}");
        assert!(text.contains(r#""resourceId":"paris-1""#), "{text}");

        // more changes than it may fall behind by while it reads nothing: it is dropped
        let change = Change::from_row(&ActivityRow {
            id: "x".into(),
            body: r#"{"type":"io.mecplane.meao.site.changed","subject":"s","data":{}}"#.into(),
            actor: None,
            created_at: 0,
        })
        .unwrap();
        for _ in 0..=BACKLOG {
            portal
                .live
                .sender
                .send(Signal::Change(Arc::new(change.clone())))
                .unwrap();
        }
        let body = rest(stream).await;
        assert!(body.ends_with("event: ended\ndata: lagged\n\n"), "{body}");
        let open = portal.live.open.lock().unwrap().total;
        assert_eq!(open, 0, "the slot is free again");

        // the MEAO stops: open streams end
        let stream = open_stream(&url, &token).await;
        portal.live.sender.send(Signal::End).unwrap();
        assert!(
            rest(stream)
                .await
                .ends_with("event: ended\ndata: stopping\n\n")
        );
    }
}

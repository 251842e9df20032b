//! The MEAO-MEP link under a bad network: 1000 configuration updates (and removals) for 20
//! instances while a TCP relay between the MEP and the MEAO cuts every connection at random
//! moments. The MEP must end with exactly the latest version of each instance, none lost and
//! none older, also after its own restart from the store. Then the MEAO goes away: the MEP keeps
//! serving Mp1 and DNS from its store, and when the MEAO is back the link resyncs from versions.
//! MEAO and MEP each run on SQLite and on PostgreSQL. The link's identities: a MEP is the site
//! its client certificate names, nothing else gets a stream. And failover: the MEP of a failed
//! site serves on alone and gives the instance up when it is back.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use api_specs::mp1::provisioning::AppInstanceConfig;
use e2e::{Relay, Rng, link_configs, meao_config, resolve};
use futures::StreamExt;
use meao::events::testing::free_port;
use meao::mep_link::{Desired, MepLink};
use serde_json::json;
use server_kit::testing::{Db, EVENTUALLY, TestPki, eventually, fresh_database};

const SITE: &str = "edge-1";
const VA: &str = "7f3c2a1e-5b7d-4e2a-9c11-0a1b2c3d4e51";
const INSTANCES: u64 = 20;
const UPDATES: u64 = 1000;

fn instance(k: u64) -> String {
    format!("app-{k:02}")
}

/// Update `n` of instance `k`: a DNS rule whose address encodes `n`.
fn config(k: u64, n: u64) -> AppInstanceConfig {
    let id = instance(k);
    serde_json::from_value(json!({
        "appInfo": {"appName": format!("app{k}"), "appInstanceId": id},
        "appDNSRule": [{
            "dnsRuleId": "main", "domainName": format!("{id}.link.test"),
            "ipAddressType": "IP_V4", "ipAddress": format!("10.{}.{}.{k}", n / 256, n % 256),
            "ttl": 30, "state": "ACTIVE"
        }]
    }))
    .unwrap()
}

/// What the MEAO last desired for each instance: `Some(update)` or `None` (removed).
type Latest = BTreeMap<String, (i64, Option<AppInstanceConfig>)>;

async fn wait_acked(link: &MepLink, latest: &Latest) -> Duration {
    let started = Instant::now();
    eventually(
        "every version acknowledged",
        Duration::from_secs(90),
        async || {
            let instances = link.site_mep(SITE).await.unwrap().app_instances;
            let held = instances.len();
            let pending: Vec<_> = instances
                .into_iter()
                .filter(|i| i.acked_version < i.version)
                .map(|i| (i.app_instance_id, i.version, i.acked_version))
                .collect();
            if pending.is_empty() && held == latest.len() {
                Ok(())
            } else {
                Err(pending)
            }
        },
    )
    .await;
    started.elapsed()
}

/// The MEP holds exactly the latest version of every instance, with its configuration.
fn check_mep(platform: &mep::platform::Platform, latest: &Latest) {
    let held = platform.desired_versions();
    let expected: BTreeMap<String, u64> = latest
        .iter()
        .map(|(id, (v, _))| (id.clone(), u64::try_from(*v).unwrap()))
        .collect();
    assert_eq!(held, expected, "versions held by the MEP");
    for (id, (version, desired)) in latest {
        match (desired, platform.app_instance_get(id)) {
            (Some(want), Ok(got)) => {
                assert_eq!(
                    got.config.app_dns_rule, want.app_dns_rule,
                    "{id} v{version}"
                );
                assert_eq!(got.config.app_info.app_name, want.app_info.app_name);
            }
            (None, Err(_)) => {}
            (want, got) => panic!("{id} v{version}: wanted {want:?}, the MEP has {got:?}"),
        }
    }
}

async fn start_meao(
    url: &str,
    dir: &std::path::Path,
    link: &meao::mep_link::MepLinkConfig,
) -> meao::server::RunningServer {
    let mut config = meao_config(dir);
    config.database_url = url.into();
    config.mep_link = Some(link.clone());
    config.sites = vec![
        serde_json::from_value(json!({
            "id": SITE, "location": {"latitude": 48.86, "longitude": 2.35}, "zone": "paris",
            "mepUrl": "https://edge-1.mep.example", "vim": {"kind": "simulated", "cpuMillis": 8000, "memoryMib": 16384}
        }))
        .unwrap(),
    ];
    meao::server::Server::start(config).await.unwrap()
}

async fn link_survives_cuts_and_outages(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let meao_db = fresh_database(db, "meao", dir.path()).await;
    let mep_db = fresh_database(db, "mep", dir.path()).await;
    let (meao_link, mut mep_link) =
        link_configs(&TestPki::new(dir.path(), "link CA"), SITE, free_port());
    let relay = Relay::start(vec![meao_link.listen.port()]).await;
    mep_link.url = format!("https://127.0.0.1:{}", relay.port);

    let meao = start_meao(&meao_db, dir.path(), &meao_link).await;
    let link = meao.lcm.mep_link().unwrap();
    let mep_config = mep::config::MepConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: mep_db,
        meao: Some(mep_link),
        dns: mep::config::DnsConfig {
            listen: Some("127.0.0.1:0".parse().unwrap()),
            ..Default::default()
        },
        ..mep::config::MepConfig::default()
    };
    let mep = mep::server::Server::start(mep_config.clone())
        .await
        .unwrap();

    let mut rng = Rng::from_clock();
    let mut latest = Latest::new();
    let (mut cuts, mut live_cut) = (0, 0);
    let started = Instant::now();
    for n in 1..=UPDATES {
        let k = rng.below(INSTANCES);
        let id = instance(k);
        // one update in ten removes the instance (which a later update may bring back)
        let desired = (rng.below(10) > 0).then(|| config(k, n));
        let version = match &desired {
            Some(c) => link.desire(SITE, &id, Desired::Config(c)).await,
            None => {
                link.desire(
                    SITE,
                    &id,
                    Desired::Removal {
                        graceful_timeout: 0,
                    },
                )
                .await
            }
        }
        .unwrap();
        latest.insert(id, (version, desired));
        if rng.below(40) == 0 {
            cuts += 1;
            live_cut += relay.cut();
        }
        if rng.below(4) == 0 {
            tokio::time::sleep(Duration::from_millis(rng.below(5))).await;
        }
    }
    let sent = started.elapsed();
    let settled = wait_acked(&link, &latest).await;
    println!(
        "{UPDATES} updates in {sent:?}, {cuts} cuts ({live_cut} live connections cut), all acknowledged {settled:?} later"
    );
    assert!(live_cut > 0, "the relay never cut an open stream");
    check_mep(&mep.platform, &latest);

    // the versions and configurations are durable: a restarted MEP holds the same
    mep.shutdown().await;
    let mep = mep::server::Server::start(mep_config.clone())
        .await
        .unwrap();
    check_mep(&mep.platform, &latest);

    // edge autonomy: with the MEAO gone the MEP serves DNS (and Mp1) from its store
    let (ready_id, (_, ready)) = latest.iter().find(|(_, (_, c))| c.is_some()).unwrap();
    let ready_ip = ready.as_ref().unwrap().app_dns_rule[0].ip_address.clone();
    meao.shutdown().await;
    mep.platform.confirm_ready(ready_id, "READY").await.unwrap();
    let answer = resolve(mep.dns_addr.unwrap(), &format!("{ready_id}.link.test.")).await;
    assert_eq!(answer, Ok(vec![ready_ip]));
    let r = reqwest::get(format!(
        "{}/mec_app_support/v1/timing/current_time",
        mep.api_root
    ))
    .await
    .unwrap();
    assert_eq!(r.status(), 401, "Mp1 answers (and still wants a token)");

    // the MEAO comes back: the MEP reconnects and only what changed meanwhile travels
    let meao = start_meao(&meao_db, dir.path(), &meao_link).await;
    let link = meao.lcm.mep_link().unwrap();
    for k in 0..INSTANCES {
        if k % 2 == 0 {
            let n = UPDATES + k + 1;
            let version = link
                .desire(SITE, &instance(k), Desired::Config(&config(k, n)))
                .await
                .unwrap();
            latest.insert(instance(k), (version, Some(config(k, n))));
        }
    }
    wait_acked(&link, &latest).await;
    check_mep(&mep.platform, &latest);
    // the MEP reports each instance up the link (a status follows its ACK)
    eventually(
        "the MEP's reports of every instance",
        EVENTUALLY,
        async || {
            let reported = link.site_mep(SITE).await.unwrap();
            let wrong: Vec<_> = reported
                .app_instances
                .iter()
                .filter(|i| {
                    let readiness = i.status.as_ref().map(|s| s.readiness.as_str());
                    match &latest[&i.app_instance_id].1 {
                        Some(_) => !matches!(readiness, Some("INSTANTIATED" | "READY")),
                        None => !matches!(readiness, None | Some("ABSENT")),
                    }
                })
                .collect();
            if reported.connected && wrong.is_empty() {
                Ok(())
            } else {
                Err(format!("connected {}, {wrong:?}", reported.connected))
            }
        },
    )
    .await;

    mep.shutdown().await;
    meao.shutdown().await;
    drop(relay);
}

server_kit::on_both_dbs!(link_survives_cuts_and_outages);

/// Opens a stream as `cn` (a certificate from `pki`) claiming to be site `claimed`: the open
/// stream (the MEAO holds the session while it is), or the status the MEAO refused it with (TLS
/// failures included).
async fn open_as(
    pki: &TestPki,
    ca: &std::path::Path,
    cn: &str,
    claimed: &str,
    port: u16,
) -> Result<tonic::Streaming<api_specs::meplink::MeaoMessage>, tonic::Status> {
    use api_specs::meplink::mep_link_client::MepLinkClient;
    use api_specs::meplink::{Hello, MepMessage, mep_message::Kind};
    let (cert_file, key_file) = pki.issue(cn);
    let tls = server_kit::grpc::ClientTlsConfig {
        cert_file,
        key_file,
        ca_file: ca.to_owned(),
    };
    let connector = server_kit::grpc::tls_connector(&tls).unwrap();
    let url = format!("https://127.0.0.1:{port}");
    let channel = server_kit::grpc::channel(&url, connector, Duration::from_secs(2))
        .await
        .map_err(|e| tonic::Status::unavailable(server_kit::problem::error_chain(&e)))?;
    let hello = MepMessage {
        kind: Some(Kind::Hello(Hello {
            mep_id: claimed.into(),
            held: Vec::new(),
        })),
    };
    // the request stream stays open like a MEP's
    let outbound = futures::stream::iter([hello]).chain(futures::stream::pending());
    Ok(MepLinkClient::new(channel)
        .connect(outbound)
        .await?
        .into_inner())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mep_is_the_site_its_certificate_names() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path(), "link CA");
    let (meao_link, _) = link_configs(&pki, SITE, free_port());
    let port = meao_link.listen.port();
    let url = fresh_database(Db::Sqlite, "meao", dir.path()).await;
    let meao = start_meao(&url, dir.path(), &meao_link).await;
    let ca = pki.ca_file();

    // a certificate from another CA does not get past the handshake (the alert surfaces at
    // the client as a failed connection or a failed call)
    let foreign_dir = dir.path().join("foreign");
    std::fs::create_dir(&foreign_dir).unwrap();
    let foreign = TestPki::new(&foreign_dir, "foreign CA");
    let refused = open_as(&foreign, &ca, SITE, SITE, port).await.unwrap_err();
    assert!(
        matches!(
            refused.code(),
            tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled
        ),
        "{refused:?}"
    );
    let link = meao.lcm.mep_link().unwrap();
    assert!(!link.connected(SITE));

    let refused = open_as(&pki, &ca, "edge-2", SITE, port).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    let refused = open_as(&pki, &ca, "edge-2", "edge-2", port)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::NotFound, "{refused:?}");
    let stream = open_as(&pki, &ca, SITE, SITE, port).await.unwrap();
    assert!(
        link.connected(SITE),
        "registered before the stream was answered"
    );
    drop(stream);

    meao.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_configuration_reaches_the_meao() {
    let dir = tempfile::tempdir().unwrap();
    let (meao_link, mep_link) =
        link_configs(&TestPki::new(dir.path(), "link CA"), SITE, free_port());
    let url = fresh_database(Db::Sqlite, "meao", dir.path()).await;
    let meao = start_meao(&url, dir.path(), &meao_link).await;
    let link = meao.lcm.mep_link().unwrap();
    let mep = mep::server::Server::start(e2e::linked_mep_config(
        fresh_database(Db::Sqlite, "mep", dir.path()).await,
        mep_link,
    ))
    .await
    .unwrap();

    let mut bad = config(1, 1);
    bad.app_dns_rule[0].ip_address = "not-an-address".into();
    let version = link
        .desire(SITE, "app-01", Desired::Config(&bad))
        .await
        .unwrap();
    let refused = link
        .await_ack(SITE, "app-01", version, Duration::from_secs(30))
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, meao::mep_link::LinkError::Refused { error, .. } if error.contains("not-an-address")),
        "{refused}"
    );
    // the next version is fine
    let version = link
        .desire(SITE, "app-01", Desired::Config(&config(1, 2)))
        .await
        .unwrap();
    link.await_ack(SITE, "app-01", version, Duration::from_secs(30))
        .await
        .unwrap();
    assert!(mep.platform.app_instance_get("app-01").is_ok());
    mep.shutdown().await;
    meao.shutdown().await;
}

/// Failover over the link: site a-1 goes dark (its VIM unreachable, its MEP cut off from the
/// MEAO). The instance moves to b-1, whose MEP gets its configuration; a-1's MEP meanwhile keeps
/// answering the instance's DNS rule from its store, and drops the instance as soon as it
/// reconnects, because the removal waited for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relocated_instance_leaves_the_failed_sites_mep() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path(), "link CA");
    let port = free_port();
    let (_, mut link_a) = link_configs(&pki, "a-1", port);
    let (meao_link, link_b) = link_configs(&pki, "b-1", port);
    let relay = Relay::start(vec![port]).await;
    link_a.url = format!("https://127.0.0.1:{}", relay.port);
    let mut meps = Vec::new();
    for (site, link) in [("a-1", link_a), ("b-1", link_b)] {
        let config = mep::config::MepConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            database_url: fresh_database(Db::Sqlite, &format!("mep_{}", &site[..1]), dir.path())
                .await,
            meao: Some(link),
            dns: mep::config::DnsConfig {
                listen: Some("127.0.0.1:0".parse().unwrap()),
                ..Default::default()
            },
            ..mep::config::MepConfig::default()
        };
        meps.push(mep::server::Server::start(config).await.unwrap());
    }
    let site = |id: &str, offline: bool| {
        json!({"id": id, "location": {"latitude": 48.86, "longitude": 2.35}, "zone": "paris",
            "services": ["RNIS"], "mepUrl": format!("https://{id}.mep.example"),
            "vim": {"kind": "simulated", "cpuMillis": 16000, "memoryMib": 32768, "offline": offline}})
    };
    let mut config = meao_config(dir.path());
    config.mep_link = Some(meao_link);
    config.sites = ["a-1", "b-1"]
        .map(|id| serde_json::from_value(site(id, false)).unwrap())
        .into();
    config.site_refresh_secs = 1;
    config.failover_after_secs = Some(0);
    let meao = meao::server::Server::start(config).await.unwrap();
    let http = reqwest::Client::new();
    let m = meao.api_root.clone();
    let oss = e2e::token(&http, &m, "oss", "oss-secret").await;
    e2e::onboard_example(&http, &m, &oss, "video-analytics").await;
    let id = e2e::create_instance(&http, &m, &oss, VA).await;
    let op = e2e::run_op(&http, &m, &oss, &id, "instantiate", json!({})).await;
    assert_eq!(op["placement"]["chosen"], "a-1", "{op:#}");
    let (a, b) = (&meps[0], &meps[1]);
    a.platform.confirm_ready(&id, "READY").await.unwrap();
    let name = "detections.va.mec.example.";
    let at_a = Ok(vec!["10.100.0.10".to_owned()]);
    assert_eq!(resolve(a.dns_addr.unwrap(), name).await, at_a);

    // a-1 goes dark
    relay.block();
    let r = http
        .put(format!("{m}/inventory/v1/sites/a-1"))
        .bearer_auth(&oss)
        .json(&site("a-1", true))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    eventually("b-1's MEP gets the instance", EVENTUALLY, async || {
        b.platform.app_instance_get(&id).map(|_| ())
    })
    .await;
    // cut off, a-1's MEP still answers from its store
    assert_eq!(resolve(a.dns_addr.unwrap(), name).await, at_a);
    assert!(a.platform.app_instance_get(&id).is_ok());

    // a-1's MEP reconnects and gets the removal that waited for it
    relay.unblock();
    eventually("a-1's MEP drops the instance", EVENTUALLY, async || match a
        .platform
        .app_instance_get(&id)
    {
        Ok(held) => Err(held),
        Err(_) => Ok(()),
    })
    .await;
    assert!(resolve(a.dns_addr.unwrap(), name).await.is_err());
    // the MEP's ACK of the removal follows on the link: the MEAO records it
    let link = meao.lcm.mep_link().unwrap();
    eventually(
        "the MEAO records a-1's ACK of the removal",
        EVENTUALLY,
        async || {
            let at_a = link.site_mep("a-1").await.unwrap();
            match at_a
                .app_instances
                .into_iter()
                .find(|i| i.app_instance_id == id)
            {
                Some(entry) if entry.removal && entry.acked_version == entry.version => Ok(()),
                entry => Err(entry),
            }
        },
    )
    .await;

    for mep in meps {
        mep.shutdown().await;
    }
    meao.shutdown().await;
}

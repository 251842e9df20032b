//! Desired configurations from the MEAO (what the link applies): each version applies once and
//! in order, whatever order and however often versions arrive; refusals leave the held version;
//! versions are stored with the configuration and survive a restart.

use mep::platform::{AppInstanceConfig, AppInstanceState, Desired, MepError};
use serde_json::Value;

use super::common::{Ctx, Db, app_config};
use server_kit::on_both_dbs;

on_both_dbs!(desired_versions_apply_once_and_in_order);

fn with_ip(id: &str, ip: &str) -> Desired {
    let mut c: Value = app_config(id);
    c["appDNSRule"][0]["ipAddress"] = ip.into();
    Desired::Config(Box::new(
        serde_json::from_value::<AppInstanceConfig>(c).unwrap(),
    ))
}

fn dns_ip(ctx: &Ctx, id: &str) -> String {
    let record = ctx.server().platform.app_instance_get(id).unwrap();
    record.config.app_dns_rule[0].ip_address.clone()
}

async fn desired_versions_apply_once_and_in_order(db: Db) {
    let mut ctx = Ctx::start(db).await;
    let p = ctx.server().platform.clone();
    assert_eq!(
        p.apply_desired("i1", 2, with_ip("i1", "10.0.0.2"))
            .await
            .unwrap(),
        2
    );
    // an older version changes nothing and names the one held
    assert_eq!(
        p.apply_desired("i1", 1, with_ip("i1", "10.0.0.1"))
            .await
            .unwrap(),
        2
    );
    assert_eq!(dns_ip(&ctx, "i1"), "10.0.0.2");
    // a resent version is acknowledged again without being applied again
    assert_eq!(
        p.apply_desired("i1", 2, with_ip("i1", "10.0.0.9"))
            .await
            .unwrap(),
        2
    );
    assert_eq!(dns_ip(&ctx, "i1"), "10.0.0.2");
    // an invalid configuration is refused and the held version stays
    let refused = p.apply_desired("i1", 3, with_ip("i1", "not-an-ip")).await;
    assert!(matches!(refused, Err(MepError::Invalid(_))), "{refused:?}");
    assert_eq!(p.desired_versions()["i1"], 2);
    assert_eq!(
        p.apply_desired("i1", 3, with_ip("i1", "10.0.0.3"))
            .await
            .unwrap(),
        3
    );
    assert_eq!(dns_ip(&ctx, "i1"), "10.0.0.3");

    // removal; an older configuration arriving late does not bring the instance back
    let removal = || Desired::Removal {
        graceful_timeout: 0,
    };
    assert_eq!(p.apply_desired("i1", 5, removal()).await.unwrap(), 5);
    assert!(p.app_instance_get("i1").is_err());
    assert_eq!(
        p.apply_desired("i1", 4, with_ip("i1", "10.0.0.4"))
            .await
            .unwrap(),
        5
    );
    assert!(p.app_instance_get("i1").is_err());
    // a newer one does
    assert_eq!(
        p.apply_desired("i1", 6, with_ip("i1", "10.0.0.6"))
            .await
            .unwrap(),
        6
    );
    assert_eq!(dns_ip(&ctx, "i1"), "10.0.0.6");
    // removing what was never provisioned is recorded too
    assert_eq!(p.apply_desired("i2", 1, removal()).await.unwrap(), 1);

    // the status reported up: readiness and rules in effect
    p.confirm_ready("i1", "READY").await.unwrap();
    let report = p
        .instance_reports()
        .into_iter()
        .find(|r| r.app_instance_id == "i1")
        .unwrap();
    assert_eq!(report.state, AppInstanceState::Ready);
    assert_eq!((report.traffic_rules, report.active_traffic_rules), (1, 1));
    assert_eq!((report.dns_rules, report.active_dns_rules), (1, 1));

    // versions are stored with the configuration
    drop(p);
    ctx.restart().await;
    let p = &ctx.server().platform;
    let held: Vec<(String, u64)> = p.desired_versions().into_iter().collect();
    assert_eq!(held, [("i1".to_owned(), 6), ("i2".to_owned(), 1)]);
    assert_eq!(dns_ip(&ctx, "i1"), "10.0.0.6");
}

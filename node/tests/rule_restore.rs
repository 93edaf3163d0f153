//! A `strata rule` killed and restarted mid-`for` keeps the pending time: the alert fires
//! `for` after it first became active (plus the outage, as in Prometheus), not `for` after the
//! restart. Real processes: the `strata` binary and Alertmanager 0.25; the rule's expression
//! needs no data, so the embedded engine over an empty bucket evaluates it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "cluster_common/mod.rs"]
mod common;
mod rule_common;

use common::wait_for;
use rule_common::{
    am_alerts, available, get_json, now_ms, ruler_alerts, start_alertmanager, unix_ms, Proc, WAIT,
};
use std::path::Path;

/// The rule's `for`; the restart comes after 70% of it, so that a lost pending time would
/// delay firing by far more than a slow restart does.
const FOR_MS: i64 = 20_000;

fn start_ruler(dir: &Path, name: &str, am: &str) -> (Proc, String) {
    rule_common::start_ruler(
        dir,
        name,
        &[
            format!("--alertmanagers.url=http://{am}"),
            "--resend-delay=1s".to_string(),
            // Prometheus' flag name; the default 10m grace would skip a 20s `for`.
            "--rules.alert.for-grace-period=1s".to_string(),
        ],
    )
}

/// The one alert's state and activeAt (ms) at the ruler.
fn alert_at_ruler(ruler: &str) -> Option<(String, i64)> {
    let alerts = ruler_alerts(ruler);
    let a = alerts.first()?;
    Some((
        a["state"].as_str()?.to_string(),
        unix_ms(a["activeAt"].as_str()?),
    ))
}

fn last_evaluation_ms(ruler: &str) -> Option<i64> {
    let v = get_json(ruler, "/api/v1/rules")?;
    let t = v["data"]["groups"][0]["lastEvaluation"].as_str()?;
    Some(unix_ms(t))
}

#[test]
fn ruler_restarted_mid_for_keeps_the_pending_time() {
    if !available("prometheus-alertmanager") {
        eprintln!("SKIPPED: prometheus-alertmanager not on PATH");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("ruler/bucket")).unwrap();
    std::fs::write(
        dir.join("rules.yml"),
        "groups:\n- name: restore\n  rules:\n  - alert: AlwaysOn\n    expr: vector(1)\n    for: 20s\n    labels:\n      severity: page\n",
    )
    .unwrap();
    let (_am, am) = start_alertmanager(dir);
    let (mut first, ruler) = start_ruler(dir, "strata-rule-1", &am);
    let (state, active_at) = wait_for(WAIT, "the alert pending", || alert_at_ruler(&ruler));
    assert_eq!(state, "pending");
    // Most of `for` spent pending, by the ruler's own evaluation clock.
    wait_for(WAIT, "14 s of pending evaluations", || {
        let last = last_evaluation_ms(&ruler)?;
        let (state, at) = alert_at_ruler(&ruler)?;
        assert_eq!((state.as_str(), at), ("pending", active_at));
        (last - active_at >= FOR_MS * 7 / 10).then_some(())
    });
    first.kill();
    assert!(
        am_alerts(&am).is_empty(),
        "nothing fired before the restart"
    );

    let restarted_at = now_ms();
    let (_second, ruler) = start_ruler(dir, "strata-rule-2", &am);
    let (_, restored) = wait_for(WAIT, "the alert active after the restart", || {
        alert_at_ruler(&ruler)
    });
    assert!(
        active_at <= restored && restored < restarted_at,
        "activeAt {restored} is restored from {active_at} (shifted by the outage), not a fresh \
         activation after the restart at {restarted_at}"
    );
    let received = wait_for(WAIT, "the alert at Alertmanager", || {
        let a = am_alerts(&am);
        (!a.is_empty()).then_some(a)
    });
    assert_eq!(received.len(), 1, "{received:?}");
    let starts_at = unix_ms(received[0]["startsAt"].as_str().unwrap());
    assert!(
        starts_at - active_at >= FOR_MS,
        "never fires before `for` has passed since the first activation: {} ms",
        starts_at - active_at
    );
    assert!(
        starts_at < restarted_at + FOR_MS,
        "fired at {starts_at}, not a whole `for` after the restart at {restarted_at}"
    );
    let (state, at) = alert_at_ruler(&ruler).unwrap();
    assert_eq!((state.as_str(), at), ("firing", restored));
}

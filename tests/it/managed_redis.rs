//! Section 19, Redis as clouds sell it: the scale-out scenarios (watch
//! through the other replica, resume, DELETE, shared limits) on a
//! `redis-server` that takes TLS only, with a certificate signed by a CA made
//! in the test (`[store] ca_file`), and an ACL user and password in the URL,
//! the default user off; and the URL's password never in a log or an error.

use crate::common::redis::*;
use crate::common::*;
use crate::scale_out::*;

#[tokio::test]
async fn over_tls_with_an_acl_user_a_generation_is_watched_through_the_other_replica() {
    a_generation_made_on_a_is_watched_on_b_with_the_same_frames_on(Kind::Managed).await;
}

#[tokio::test]
async fn over_tls_with_an_acl_user_a_dropped_stream_resumes_on_the_other_replica() {
    a_stream_dropped_on_a_resumes_on_b_with_no_gap_or_duplicate_on(Kind::Managed).await;
}

#[tokio::test]
async fn over_tls_with_an_acl_user_delete_on_one_replica_cancels_on_the_other() {
    delete_on_b_cancels_the_upstream_on_a_within_two_seconds_on(Kind::Managed).await;
}

#[tokio::test]
async fn over_tls_with_an_acl_user_limits_are_shared() {
    a_burst_of_three_is_shared_across_the_replicas_on(Kind::Managed).await;
    a_global_cap_of_two_streams_is_shared_and_a_killed_replica_frees_its_slots_on(Kind::Managed)
        .await;
}

#[tokio::test]
async fn a_wrong_password_or_an_unknown_ca_keeps_the_replica_unready_and_the_password_unlogged() {
    let Some(redis) = Redis::start_as(Kind::Managed) else {
        return;
    };
    let good = redis.store_config();
    let wrong_password = good.replace(ACL_PASSWORD, "not-the-password-42");
    // Without ca_file the system's roots are used, which never signed the
    // test's CA.
    let unknown_ca: String = good
        .lines()
        .filter(|line| !line.starts_with("ca_file"))
        .map(|line| format!("{line}\n"))
        .collect();
    for config in [wrong_password, unknown_ca] {
        let replica = crate::common::binary::Sluice::start(&config, &[]);
        let mut ready = 0;
        for _ in 0..20 {
            ready = crate::common::redis::ready(&replica).await;
            if ready == 503 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(ready, 503, "not ready without Redis: {config}");
        let got = post_json_to(&replica).await;
        assert_eq!(got.status, 503, "{}", got.text);
        assert!(!got.text.contains("not-the-password-42") && !got.text.contains(ACL_PASSWORD));
        replica.terminate();
        let log = replica.log_lines().join("\n");
        assert!(!log.contains("not-the-password-42"), "{log}");
        assert!(!log.contains(ACL_PASSWORD), "{log}");
    }
}

async fn post_json_to(on: &crate::common::binary::Sluice) -> Received {
    receive(
        client()
            .post(on.url("/v1/generations"))
            .json(&serde_json::json!({"prompt": "hi"}))
            .send()
            .await
            .unwrap(),
    )
    .await
}

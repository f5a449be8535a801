//! Section 19, Redis Cluster (`[store] cluster`): the scale-out scenarios
//! (watch through the other replica, resume, `DELETE`, shared limits, a
//! killed owner, polling watchers) on three primaries made by `redis-cli
//! --cluster create`, the slots split among them; and the generations' keys
//! spread over the nodes, each generation's in one slot.

use serde_json::json;

use crate::common::redis::*;
use crate::scale_out::*;

#[tokio::test]
async fn on_a_cluster_a_generation_is_watched_through_the_other_replica() {
    a_generation_made_on_a_is_watched_on_b_with_the_same_frames_on(Kind::Cluster).await;
}

#[tokio::test]
async fn on_a_cluster_watchers_past_blocking_readers_poll() {
    watchers_past_blocking_readers_poll_and_share_one_copy_on(Kind::Cluster).await;
}

#[tokio::test]
async fn on_a_cluster_a_dropped_stream_resumes_on_the_other_replica() {
    a_stream_dropped_on_a_resumes_on_b_with_no_gap_or_duplicate_on(Kind::Cluster).await;
}

#[tokio::test]
async fn on_a_cluster_delete_on_one_replica_cancels_on_the_other() {
    delete_on_b_cancels_the_upstream_on_a_within_two_seconds_on(Kind::Cluster).await;
}

#[tokio::test]
async fn on_a_cluster_limits_are_shared() {
    a_burst_of_three_is_shared_across_the_replicas_on(Kind::Cluster).await;
    a_global_cap_of_two_streams_is_shared_and_a_killed_replica_frees_its_slots_on(Kind::Cluster)
        .await;
}

#[tokio::test]
async fn on_a_cluster_the_owner_killed_gives_generation_lost() {
    the_owner_killed_gives_generation_lost_on_b_within_ten_seconds_on(Kind::Cluster).await;
}

#[tokio::test]
async fn on_a_cluster_generations_spread_over_the_nodes() {
    let Some((redis, a, b)) = pair_on(Kind::Cluster, "").await else {
        return;
    };
    let before = redis.keys_per_node();
    let mut ids = Vec::new();
    for _ in 0..12 {
        ids.push(post_generation(&a, json!({"tokens": 3})).await);
    }
    // Each is read whole through the other replica: its record, log and
    // lease were found together.
    for id in &ids {
        let got = events(&b, id).await;
        assert_eq!(got.terminal().event, "done", "{}", got.text);
        assert_eq!(indexes(&got, id), (0..4).collect::<Vec<_>>());
    }
    let after = redis.keys_per_node();
    let grew = before.iter().zip(&after).filter(|(b, a)| a > b).count();
    // Twelve random ids all in one node's slots would be 3 × (1/3)^12.
    assert!(
        grew >= 2,
        "generations spread over the nodes: {before:?} -> {after:?}"
    );
}

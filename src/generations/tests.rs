//! The registry and its logs, in one process.

use super::*;
use crate::generation::{Finish, Usage};
use frames::{Gone, Status};

fn store(retain_secs: u64, retain_max_bytes: usize) -> Generations {
    Generations::new(&Streams {
        retain_secs,
        retain_max_bytes,
        ..Streams::default()
    })
}

fn finish(log: &Log) {
    log.append(Entry::Token("x".repeat(100)));
    log.append(Entry::Done(Finish::new("stop", Usage::default())));
}

#[tokio::test(start_paused = true)]
async fn ended_logs_stay_for_retain_secs_then_go() {
    let store = store(300, usize::MAX);
    let log = store.create_here(None, "m", 1, CancellationToken::new());
    let id = log.id().to_string();
    finish(log.as_ref());
    tokio::time::advance(Duration::from_secs(299)).await;
    assert!(store.find_here(&id, None).is_some());
    tokio::time::advance(Duration::from_secs(2)).await;
    assert!(store.find_here(&id, None).is_none());
}

#[tokio::test(start_paused = true)]
async fn past_retain_max_bytes_the_oldest_ended_logs_go_first_and_running_ones_stay() {
    let one = Entry::Token("x".repeat(100)).bytes()
        + Entry::Done(Finish::new("stop", Usage::default())).bytes()
        + PER_GENERATION;
    let store = store(300, 2 * one);
    let running = store.create_here(None, "m", 1, CancellationToken::new());
    running.append(Entry::Token("y".repeat(10_000)));
    let ids: Vec<String> = (0..3)
        .map(|_| {
            let log = store.create_here(None, "m", 1, CancellationToken::new());
            finish(log.as_ref());
            log.id().to_string()
        })
        .collect();
    assert!(store.find_here(&ids[0], None).is_none(), "the oldest went");
    assert!(store.find_here(&ids[1], None).is_some());
    assert!(store.find_here(&ids[2], None).is_some());
    assert!(store.find_here(&running.id().to_string(), None).is_some());
}

#[test]
fn a_copy_keeps_the_source_s_indexes_skips_repeats_and_says_what_a_gap_lost() {
    let copy = Log::copy(
        Record {
            id: GenId::known("gen_copy"),
            owner: None,
            model: "m".into(),
            created: 0,
            prompt_tokens: 1,
            max_log_bytes: usize::MAX,
        },
        CancellationToken::new(),
    );
    copy.copy_frame(0, Entry::Token("a".into()));
    copy.copy_frame(0, Entry::Token("a".into()));
    copy.copy_frame(1, Entry::Token("b".into()));
    assert_eq!(copy.progress(), (Status::Running, 2));
    // Frames 2 and 3 were dropped at the source.
    copy.copy_frame(4, Entry::Token("e".into()));
    assert_eq!(copy.read(Some(0)).unwrap_err(), Gone { first_kept: 4 });
    let read = copy.read(Some(3)).unwrap();
    assert_eq!(
        (read.first, read.entries),
        (4, vec![Entry::Token("e".into())])
    );
    copy.copy_frame(5, Entry::Done(Finish::new("stop", Usage::default())));
    assert_eq!(copy.progress(), (Status::Done, 6));
}

#[tokio::test]
async fn another_owner_finds_nothing() {
    let store = store(300, usize::MAX);
    let log = store.create_here(
        Some(crate::auth::KeyId(0)),
        "m",
        1,
        CancellationToken::new(),
    );
    let id = log.id().to_string();
    assert!(store.find_here(&id, Some(crate::auth::KeyId(0))).is_some());
    assert!(store.find_here(&id, Some(crate::auth::KeyId(1))).is_none());
    assert!(store.find_here(&id, None).is_none());
}

//! The playground page at `/` (contract section 9), in headless Debian
//! Chromium (`tests/browser/playground.mjs`): it loads with no request to
//! another host, streams the native door's answer into `#output` as it comes,
//! Stop cancels, the mock's failures show as `error: <type>`, the API key
//! field works with auth on; and `playground = false` makes `/` a 404.
//! Screenshots of each state go to `target/playground-screenshots/`.

use std::path::PathBuf;

use crate::browser;
use crate::common::*;
use serde_json::json;

const MOCK: &str = "[[models]]\nname = \"mock\"\nprovider = \"mock\"\ntokens = 40\n";

#[tokio::test]
async fn the_page_is_self_contained_and_playground_false_turns_it_off() {
    let server = spawn(fast_mock_config()).await;
    let response = client().get(server.url("/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let policy = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(policy.contains("connect-src 'self'"), "{policy}");
    let page = response.text().await.unwrap();
    for id in [
        "model",
        "prompt",
        "send",
        "stop",
        "output",
        "status",
        "ttft",
        "tokens",
        "api-key",
        "mock-ttft_ms",
        "mock-token_delay_ms",
        "mock-fail_after",
        "mock-drop_after",
        "mock-error_status",
    ] {
        assert!(page.contains(&format!("id=\"{id}\"")), "no #{id}");
    }
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "no other host named"
    );

    let off = spawn(config(&format!("playground = false\n{FAST_MOCK}"))).await;
    let got = send(client().get(off.url("/"))).await;
    assert_eq!(got.status, 404);
    assert_eq!(error_of(&got)["type"], "not_found");
}

#[tokio::test]
async fn in_a_browser_the_page_streams_stops_shows_failures_and_takes_an_api_key() {
    let Some(script) = browser::script("playground.mjs") else {
        return;
    };
    let server = spawn(config(MOCK)).await;
    let auth = spawn(config(&format!(
        "[auth]\napi_keys = [\"play-key\"]\n{FAST_MOCK}"
    )))
    .await;
    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/playground-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    // The native door's answer to the same request.
    let native = post_json(
        &server,
        json!({"prompt": "Tell me about rivers.", "mock": {"ttft_ms": 0, "token_delay_ms": 0}}),
    )
    .await;

    let seen = browser::run(
        &script,
        &[
            ("SLUICE_BASE", server.base.clone()),
            ("SLUICE_AUTH_BASE", auth.base.clone()),
            ("SCREENSHOTS", shots.display().to_string()),
        ],
    )
    .await;
    eprintln!("playground: {seen}");

    assert_eq!(seen["foreign"], json!([]), "no request to another host");
    assert_eq!(seen["load"]["status"], "idle");
    assert_eq!(seen["load"]["models"], json!(["mock"]));
    assert_eq!(seen["load"]["ttftShown"], false, "no empty TTFT at idle");
    assert_eq!(seen["load"]["favicon"], true);
    assert_eq!(
        seen["load"]["markdown"],
        "<h1>Rivers</h1><ul><li><strong>long</strong> and <code>wide</code></li>\
         <li><a href=\"https://example.com\" target=\"_blank\" rel=\"noopener noreferrer\">docs</a></li></ul>\
         <pre><code>x &lt; 1</code></pre>"
    );
    let hostile = seen["load"]["hostile"].as_str().unwrap();
    assert!(
        !hostile.contains("<img") && !hostile.contains("href=\"javascript"),
        "markup in an answer stays text: {hostile}"
    );

    let sent = &seen["send"];
    assert_eq!(sent["status"], "done");
    assert_eq!(
        sent["output"],
        native.token_text(),
        "#output is exactly the tokens"
    );
    assert_eq!(sent["tokens"], native.tokens().len());
    // Shown rendered as Markdown (the mock's answer is plain text, so the
    // same words), the raw tokens a toggle away.
    assert_eq!(sent["renderedShown"], true, "{sent}");
    assert_eq!(sent["rawShown"], false, "{sent}");
    let rendered = sent["rendered"].as_str().unwrap();
    assert_eq!(
        rendered.split_whitespace().collect::<Vec<_>>(),
        native.token_text().split_whitespace().collect::<Vec<_>>()
    );
    assert_eq!(
        sent["rawToggled"],
        json!({"rawShown": true, "renderedShown": false})
    );
    assert!(
        sent["ttft"].as_str().unwrap().parse::<u64>().is_ok(),
        "{sent}"
    );
    let lengths: Vec<u64> = serde_json::from_value(sent["lengths"].clone()).unwrap();
    let distinct: std::collections::BTreeSet<u64> = lengths.iter().copied().collect();
    assert!(
        distinct.len() >= 3,
        "#output grew while streaming: {lengths:?}"
    );

    let stopped = &seen["stop"];
    assert_eq!(stopped["status"], "cancelled");
    assert_eq!(
        stopped["tokens"], stopped["tokensLater"],
        "no token after Stop"
    );
    assert!(stopped["tokens"].as_u64().unwrap() < 40);

    assert_eq!(seen["rateLimited"]["status"], "error: rate_limited");
    // The error's message where the answer would be.
    assert_eq!(seen["rateLimited"]["errorShown"], true);
    let shown = seen["rateLimited"]["errorText"].as_str().unwrap();
    assert!(
        shown.starts_with("rate_limited") && shown.contains("429"),
        "{shown}"
    );
    assert_eq!(seen["failAfter"]["errorShown"], true);
    assert_eq!(seen["failAfter"]["status"], "error: upstream_error");
    assert_eq!(seen["failAfter"]["tokens"], 3);
    let malformed = &seen["malformed"];
    assert_eq!(malformed["status"], "done", "{malformed}");
    let frames = malformed["frames"].as_array().unwrap();
    let broken = frames
        .iter()
        .filter(|f| serde_json::from_str::<serde_json::Value>(f.as_str().unwrap()).is_err())
        .count();
    assert_eq!(broken, 1, "the broken frame is listed: {malformed}");
    let pause = &seen["pause"];
    assert_eq!(
        pause["held"], pause["stillHeld"],
        "no token while paused: {pause}"
    );
    assert_eq!(
        pause["stepped"].as_u64().unwrap(),
        pause["held"].as_u64().unwrap() + 1,
        "Step lets one through: {pause}"
    );
    assert_eq!(pause["status"], "done", "{pause}");
    assert_eq!(pause["tokens"], 40, "then the rest: {pause}");
    let reasoning = &seen["reasoning"];
    assert_eq!(reasoning["status"], "done");
    assert_eq!(reasoning["boxShown"], true);
    let thinking = reasoning["thinking"].as_str().unwrap();
    assert!(
        thinking.starts_with("The user is asking about"),
        "{thinking}"
    );
    assert!(
        !reasoning["output"].as_str().unwrap().contains(thinking),
        "the reasoning stays out of the answer"
    );
    assert!(
        seen["narrow"].as_u64().unwrap() <= 360,
        "usable at 360 px: {}",
        seen["narrow"]
    );

    assert_eq!(seen["auth"]["withoutKey"]["status"], "error: unauthorized");
    assert_eq!(seen["auth"]["withoutKey"]["models"], 0);
    assert_eq!(seen["auth"]["status"], "done");
    assert!(seen["auth"]["tokens"].as_u64().unwrap() > 0);
    for shot in [
        "idle",
        "streaming",
        "done",
        "cancelled",
        "error-429",
        "error-fail-after",
        "reasoning",
        "raw",
        "narrow",
        "dark",
        "auth",
    ] {
        assert!(
            shots.join(format!("{shot}.png")).exists(),
            "screenshot {shot}"
        );
    }
}

//! KalamDB's own Rust client (`kalam-client` from crates.io) against a
//! real Quiver node: sign-in, DDL, inserts, a live subscription with its
//! initial rows and a change, and unsubscribing.

use std::time::Duration;

use kalam_client::{ChangeEvent, KalamLinkClient, SubscriptionConfig, SubscriptionOptions};
use quiver_tests::TestServer;

async fn next_event(events: &mut kalam_client::SubscriptionManager) -> ChangeEvent {
    tokio::time::timeout(Duration::from_secs(20), events.next())
        .await
        .expect("an event within 20 s")
        .expect("the stream is open")
        .expect("a valid event")
}

#[tokio::test]
async fn kalam_client_signs_in_queries_and_follows_a_live_query() {
    let server = TestServer::start().await;
    let anonymous = KalamLinkClient::builder()
        .base_url(&server.base_url)
        .build()
        .unwrap();
    let login = anonymous.login("root", "").await.unwrap();
    assert!(!login.access_token.is_empty());

    let client = KalamLinkClient::builder()
        .base_url(&server.base_url)
        .jwt_token(login.access_token)
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    client
        .execute_query(
            "CREATE NAMESPACE chat; \
             CREATE TABLE chat.messages (id BIGINT PRIMARY KEY, room TEXT, body TEXT)",
            None,
            None,
            None,
        )
        .await
        .unwrap();
    client
        .execute_query(
            "INSERT INTO chat.messages VALUES (1, 'main', 'hello'), (2, 'other', 'psst')",
            None,
            None,
            None,
        )
        .await
        .unwrap();
    let answer = client
        .execute_query("SELECT COUNT(*) AS n FROM chat.messages", None, None, None)
        .await
        .unwrap();
    let text = format!("{answer:?}");
    assert!(text.contains('2'), "{text}");

    let mut config = SubscriptionConfig::new(
        "main-room",
        "SELECT * FROM chat.messages WHERE room = 'main'",
    );
    config.options = Some(SubscriptionOptions::new());
    let mut events = client.live_events_with_config(config).await.unwrap();
    let mut initial = Vec::new();
    loop {
        match next_event(&mut events).await {
            ChangeEvent::Ack { total_rows, .. } => assert_eq!(total_rows, 1),
            ChangeEvent::InitialDataBatch {
                rows,
                batch_control,
                ..
            } => {
                initial.extend(rows);
                if !batch_control.has_more {
                    break;
                }
            }
            other => panic!("unexpected event before the initial rows: {other:?}"),
        }
    }
    assert_eq!(initial.len(), 1);
    assert!(format!("{:?}", initial[0]).contains("hello"));

    client
        .execute_query(
            "INSERT INTO chat.messages VALUES (3, 'main', 'welcome'), (4, 'other', 'no')",
            None,
            None,
            None,
        )
        .await
        .unwrap();
    match next_event(&mut events).await {
        ChangeEvent::Insert { rows, .. } => {
            assert_eq!(rows.len(), 1);
            assert!(format!("{:?}", rows[0]).contains("welcome"));
        }
        other => panic!("expected an insert, got {other:?}"),
    }

    events.close().await.unwrap();
    let live = &server.context.live;
    for _ in 0..200 {
        if live.subscriptions().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(live.subscriptions().is_empty(), "unsubscribed");
    client.disconnect().await;
    server.stop().await;
}

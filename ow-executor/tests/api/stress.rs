//! Stress: many concurrent activations across many actions in one process.

use crate::helpers::*;
use ow_test_modules as modules;
use serde_json::json;
use std::sync::Arc;

pub fn a_thousand_activations_across_ten_actions(engine: &str) {
    const ACTIONS: usize = 10;
    const CLIENTS: usize = 250;
    const EACH: usize = 4;
    let app = Arc::new(spawn_app(engine));
    for c in 0..ACTIONS {
        let (status, body) = app.post(
            &format!("/c{c}/init"),
            &init_body(modules::ECHO, "main", json!({ "WHO": format!("c{c}") })),
        );
        assert_eq!(status, 200, "{body}");
    }
    let clients: Vec<_> = (0..CLIENTS)
        .map(|t| {
            let app = Arc::clone(&app);
            std::thread::spawn(move || {
                (0..EACH)
                    .map(|r| {
                        let id = t * EACH + r;
                        let params = json!({ "id": id, "payload": "p".repeat(id % 512) });
                        let answer = app.post(
                            &format!("/c{}/run", id % ACTIONS),
                            &json!({ "value": params }),
                        );
                        (params, answer)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut seen = vec![false; CLIENTS * EACH];
    for client in clients {
        for (params, (status, body)) in client.join().unwrap() {
            assert_eq!(status, 200, "{body}");
            // No lost, duplicated or mixed-up results.
            assert_eq!(body, params);
            let id = body["id"].as_u64().unwrap() as usize;
            assert!(!std::mem::replace(&mut seen[id], true), "duplicate {id}");
        }
    }
    assert!(seen.iter().all(|&s| s));
    let streams = Arc::into_inner(app).expect("clients are done").stop();
    let n = CLIENTS * EACH;
    assert_eq!(
        streams.stdout,
        format!("hello stdout\n{SENTINEL}\n").repeat(n)
    );
    assert_eq!(
        streams.stderr,
        format!("hello stderr\n{SENTINEL}\n").repeat(n)
    );
}

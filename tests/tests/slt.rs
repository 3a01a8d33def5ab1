//! Runs every `.slt` file of `tests/slt` twice: in-process against the
//! query engine, and over HTTP against a real server.

use quiver_tests::{HttpDb, InProcessDb, TestServer, run_slt_file, slt_files};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slt_in_process() {
    let files = slt_files();
    assert!(!files.is_empty(), "no .slt files found");
    let mut failures = Vec::new();
    for file in files {
        let result = run_slt_file(&file, || async {
            Ok::<_, quiver_tests::SltError>(InProcessDb::new())
        })
        .await;
        if let Err(e) = result {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slt_over_http() {
    let mut failures = Vec::new();
    for file in slt_files() {
        let server = TestServer::start().await;
        let url = server.base_url.clone();
        let result = run_slt_file(&file, move || {
            let url = url.clone();
            async move { Ok::<_, quiver_tests::SltError>(HttpDb::new(&url)) }
        })
        .await;
        if let Err(e) = result {
            failures.push(e);
        }
        server.stop().await;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread")]
async fn proxies_to_the_demo_core_and_logs_the_request() {
    let core = demo_core("core-1").await;
    let gw = Gateway::start(&simple_config(&[core], "", ""));
    let resp = client().get(gw.url("/accounts")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let accounts: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(accounts.as_array().unwrap().len(), 3);
    let log = gw.settled_access_log().await;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0]["route"], "all");
    assert_eq!(log[0]["status"], 200);
}

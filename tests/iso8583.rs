//! REST → ISO 8583 through the real gateway, in front of the demo core's card host
//! (`corridor_democore::serve_iso8583`, its own codec) or a raw TCP host the test drives.
//! The route's JSON becomes an 0100/0400 over persistent links; answers come back matched by
//! STAN, in any order; declines, timeouts, dropped links and garbage become problems.

mod common;
use common::*;

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use corridor::iso8583::Spec;

const APPROVED_PAN: &str = "4111111111111111";
const NOT_LUHN_PAN: &str = "4111111111111112";
const DO_NOT_HONOUR_PAN: &str = "4111111110080119";

async fn card_host() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(corridor_democore::serve_iso8583(listener));
    address
}

/// The demo spec, compiled by the gateway's own codec: tests read what a host got with it.
fn demo_spec() -> Spec {
    Spec::from_toml(&std::fs::read_to_string(spec_path()).unwrap()).unwrap()
}

/// What a reversal's field 90 starts with for `original`: its MTI, STAN and field 7.
fn original_data(original: &corridor::iso8583::Message) -> Vec<u8> {
    let mut data = original.mti.to_vec();
    data.extend_from_slice(original.get(11).unwrap());
    data.extend_from_slice(original.get(7).unwrap());
    data
}

fn spec_path() -> String {
    format!("{}/conf/iso8583/demo-host.toml", env!("CARGO_MANIFEST_DIR"))
}

/// A gateway with routes /authorize and /reverse to the card host at `host`; `iso_extra`
/// goes in `[upstreams.cards.iso8583]`.
fn start(host: SocketAddr, iso_extra: &str, admin: u16) -> Gateway {
    let rest = format!(
        r#"{admin_section}
[upstreams.cards]
targets = ["{host}"]
[upstreams.cards.timeouts]
connect = "500ms"
[upstreams.cards.iso8583]
spec_file = "{spec}"
reconnect_min = "20ms"
reconnect_max = "100ms"
{iso_extra}

[[routes]]
id = "authorize"
upstream = "cards"
operation = "authorization"
[routes.match]
path = "/authorize"
methods = ["POST"]

[[routes]]
id = "reverse"
upstream = "cards"
operation = "reversal"
[routes.match]
path = "/reverse"
methods = ["POST"]
"#,
        admin_section = admin_section(admin, ""),
        spec = spec_path(),
    );
    Gateway::start_with_admin(&gateway_config("", &rest), admin)
}

fn authorization(pan: &str, amount: u64, terminal: &str) -> Value {
    json!({
        "pan": pan,
        "amount_minor": amount,
        "currency": "978",
        "terminal_id": terminal,
        "merchant_id": "M000000000001",
        "expiry": "2712",
    })
}

async fn post(gw: &Gateway, path: &str, body: &Value) -> reqwest::Response {
    client().post(gw.url(path)).json(body).send().await.unwrap()
}

async fn link_event(admin: u16, event: &str) -> f64 {
    let text = admin_call(admin, "GET", "/metrics", None).await.body;
    metric(
        &text,
        "corridor_iso8583_link_events_total",
        &[("upstream", "cards"), ("event", event)],
    )
    .unwrap_or(0.0)
}

/// Polls until an authorization is approved again (the link came back), for at most 5 s.
async fn approved_again(gw: &Gateway) {
    for _ in 0..100 {
        let resp = post(
            gw,
            "/authorize",
            &authorization(APPROVED_PAN, 100, "T0000001"),
        )
        .await;
        if resp.status() == 200 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the link did not come back");
}

#[tokio::test]
async fn authorization_is_approved_and_reversed_and_no_log_holds_the_card_number() {
    let host = card_host().await;
    let admin = free_port();
    let gw = start(host, "", admin);

    let resp = post(
        &gw,
        "/authorize",
        &authorization(APPROVED_PAN, 1234, "T0000001"),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-type"), Some("application/json"));
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(answer["approved"], true, "{answer}");
    assert_eq!(answer["response_code"], "00");
    assert_eq!(answer["amount_minor"], 1234);
    let code = answer["approval_code"].as_str().unwrap();
    assert_eq!(code.len(), 6, "{answer}");
    let stan = answer["stan"].as_str().unwrap().to_owned();
    let sent_at = answer["transmission_time"].as_str().unwrap().to_owned();
    assert_eq!((stan.len(), sent_at.len()), (6, 10), "{answer}");
    assert_eq!(answer["rrn"].as_str().unwrap().len(), 12);
    assert!(!answer.to_string().contains(APPROVED_PAN), "{answer}");

    let mut reversal = authorization(APPROVED_PAN, 1234, "T0000001");
    reversal["original"] = json!({ "stan": stan, "transmission_time": sent_at });
    let resp = post(&gw, "/reverse", &reversal).await;
    assert_eq!(resp.status(), 200);
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(answer["response_code"], "00", "{answer}");

    // A reversal of something the host never approved: declined with "25".
    reversal["original"] = json!({ "stan": "999999", "transmission_time": "0101000000" });
    let resp = post(&gw, "/reverse", &reversal).await;
    let problem = assert_problem(resp, 422, "card-declined").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("not found"),
        "{problem}"
    );

    let logs = format!("{}{:?}", gw.stderr(), gw.settled_access_log().await);
    assert!(logs.contains("\"authorize\""), "{logs}");
    assert!(
        !logs.contains(APPROVED_PAN),
        "a log holds the card number: {logs}"
    );
}

#[tokio::test]
async fn declines_become_problems_with_the_spec_status() {
    let host = card_host().await;
    let gw = start(host, "", free_port());
    for (pan, amount, status, detail) in [
        (APPROVED_PAN, 200_000, 402, "Insufficient funds"),
        (NOT_LUHN_PAN, 100, 422, "Invalid card number"),
        (DO_NOT_HONOUR_PAN, 100, 402, "Do not honour"),
    ] {
        let resp = post(&gw, "/authorize", &authorization(pan, amount, "T0000001")).await;
        let (body, problem) = assert_titled_problem(resp, status, "card-declined").await;
        assert!(
            problem["detail"].as_str().unwrap().contains(detail),
            "{problem}"
        );
        assert!(
            !body.contains(pan),
            "the problem holds the card number: {body}"
        );
    }
}

#[tokio::test]
async fn bad_requests_are_refused_before_the_host_and_name_the_field_not_the_value() {
    let host = card_host().await;
    let gw = start(host, "", free_port());
    let mut letters = authorization("4111x11111111111", 100, "T0000001");
    let (body, problem) =
        assert_problem_text(post(&gw, "/authorize", &letters).await, 400, "bad-request").await;
    assert!(!body.contains("4111x"), "{body}");
    assert!(
        problem["detail"].as_str().unwrap().contains("pan"),
        "{problem}"
    );

    letters.as_object_mut().unwrap().remove("pan");
    letters["pan"] = json!(APPROVED_PAN);
    letters.as_object_mut().unwrap().remove("amount_minor");
    let problem = assert_problem(post(&gw, "/authorize", &letters).await, 400, "bad-request").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("amount_minor"),
        "{problem}"
    );

    let resp = client()
        .post(gw.url("/authorize"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_problem(resp, 400, "bad-request").await;
}

#[tokio::test]
async fn concurrent_requests_on_one_link_get_their_own_answers() {
    let host = card_host().await;
    let gw = start(host, "links = 1", free_port());
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..40u64 {
        // The host waits 0..199 ms per request, so answers come back out of order.
        let terminal = format!("D{:07}", (i * 37) % 200);
        let body = authorization(APPROVED_PAN, 1000 + i, &terminal);
        let url = gw.url("/authorize");
        calls.spawn(async move {
            let resp = client().post(url).json(&body).send().await.unwrap();
            assert_eq!(resp.status(), 200);
            let answer: Value = resp.json().await.unwrap();
            assert_eq!(answer["amount_minor"], 1000 + i, "{answer}");
            answer["stan"].as_str().unwrap().to_owned()
        });
    }
    let mut stans = calls.join_all().await;
    stans.sort();
    stans.dedup();
    assert_eq!(stans.len(), 40, "every request had its own STAN");
}

#[tokio::test]
async fn a_timeout_is_504_and_the_late_answer_is_dropped_and_counted() {
    let host = card_host().await;
    let admin = free_port();
    let gw = start(host, "links = 1\nrequest_timeout = \"300ms\"", admin);
    let resp = post(
        &gw,
        "/authorize",
        &authorization(APPROVED_PAN, 100, "D0000900"),
    )
    .await;
    assert_problem(resp, 504, "upstream-timeout").await;
    // The link is still good for others.
    approved_again(&gw).await;
    for _ in 0..50 {
        if link_event(admin, "unmatched_answer").await >= 1.0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the late answer was not counted");
}

#[tokio::test]
async fn a_link_dropped_mid_flight_fails_cleanly_and_reconnects() {
    let host = card_host().await;
    let gw = start(host, "links = 1", free_port());
    approved_again(&gw).await;
    let slow_body = authorization(APPROVED_PAN, 100, "D0001000");
    let slow = post(&gw, "/authorize", &slow_body);
    let drop = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        post(
            &gw,
            "/authorize",
            &authorization(APPROVED_PAN, 100, "DROP0000"),
        )
        .await
    };
    let (slow, drop) = tokio::join!(slow, drop);
    assert_problem(drop, 502, "upstream-link-lost").await;
    assert_problem(slow, 502, "upstream-link-lost").await;
    approved_again(&gw).await;
}

#[tokio::test]
async fn a_malformed_answer_is_502_and_the_link_is_made_anew() {
    let host = card_host().await;
    let admin = free_port();
    let gw = start(host, "links = 1", admin);
    let resp = post(
        &gw,
        "/authorize",
        &authorization(APPROVED_PAN, 100, "JUNK0000"),
    )
    .await;
    let (body, _) = assert_problem_text(resp, 502, "upstream-malformed").await;
    assert!(!body.contains("bitmap") && !body.contains("MTI"), "{body}");
    // At least once: the gateway's reversal of this authorization gets garbage too.
    assert!(link_event(admin, "malformed_answer").await >= 1.0);
    approved_again(&gw).await;
}

#[tokio::test]
async fn no_link_to_the_host_is_503_without_waiting_for_the_request_timeout() {
    let gw = start(closed_port(), "", free_port());
    let started = std::time::Instant::now();
    let resp = post(
        &gw,
        "/authorize",
        &authorization(APPROVED_PAN, 100, "T0000001"),
    )
    .await;
    assert_problem(resp, 503, "no-healthy-upstream").await;
    // Bounded by the connect timeout (500 ms), not the request timeout (15 s).
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// Reads frames (2-byte length, then the message) and reports each one's MTI, never
/// answering.
async fn silent_host() -> (
    SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<(usize, String)>,
) {
    let (address, mut frames) = silent_host_frames().await;
    let (report, seen) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some((connection, message)) = frames.recv().await {
            let mti = String::from_utf8_lossy(&message[..4]).into_owned();
            let _ = report.send((connection, mti));
        }
    });
    (address, seen)
}

/// [`silent_host`], reporting whole messages.
async fn silent_host_frames() -> (
    SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<(usize, Vec<u8>)>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (report, seen) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        for connection in 0.. {
            let (mut socket, _) = listener.accept().await.unwrap();
            let report = report.clone();
            tokio::spawn(async move {
                let mut header = [0u8; 2];
                while socket.read_exact(&mut header).await.is_ok() {
                    let mut message = vec![0; u16::from_be_bytes(header) as usize];
                    if socket.read_exact(&mut message).await.is_err() {
                        break;
                    }
                    let _ = report.send((connection, message));
                }
                let _ = socket.shutdown().await;
            });
        }
    });
    (address, seen)
}

async fn next_frame(
    seen: &mut tokio::sync::mpsc::UnboundedReceiver<(usize, String)>,
) -> (usize, String) {
    tokio::time::timeout(Duration::from_secs(5), seen.recv())
        .await
        .expect("the host heard nothing")
        .unwrap()
}

#[tokio::test]
async fn idle_links_are_echoed_and_a_host_that_does_not_answer_is_reconnected() {
    let (host, mut seen) = silent_host().await;
    let admin = free_port();
    let gw = start(
        host,
        "links = 1\nrequest_timeout = \"200ms\"\necho_interval = \"300ms\"",
        admin,
    );
    // A reversal: the one operation the gateway does not reverse in turn when it times out.
    let mut reversal = authorization(APPROVED_PAN, 100, "T0000001");
    reversal["original"] = json!({ "stan": "000001", "transmission_time": "0101000000" });
    let resp = post(&gw, "/reverse", &reversal).await;
    assert_problem(resp, 504, "upstream-timeout").await;
    assert_eq!(next_frame(&mut seen).await, (0, "0400".to_owned()));
    // Silent for the echo interval: an echo, unanswered, then a new link that is echoed too.
    assert_eq!(next_frame(&mut seen).await, (0, "0800".to_owned()));
    assert_eq!(next_frame(&mut seen).await, (1, "0800".to_owned()));
    assert!(link_event(admin, "echo_failed").await >= 1.0);
}

#[tokio::test]
async fn an_authorization_whose_outcome_is_unknown_is_reversed_until_answered() {
    let (host, mut frames) = silent_host_frames().await;
    let admin = free_port();
    let gw = start(host, "links = 1\nrequest_timeout = \"200ms\"", admin);
    let resp = post(
        &gw,
        "/authorize",
        &authorization(APPROVED_PAN, 100, "T0000001"),
    )
    .await;
    let problem = assert_problem(resp, 504, "upstream-timeout").await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("being reversed"),
        "{problem}"
    );
    // The gateway's own codec reads what the host got; the host would use its own.
    let spec = demo_spec();
    let first = spec.decode(&next_message(&mut frames).await).unwrap();
    assert_eq!(&first.mti, b"0100");
    // Field 90 names the original: its MTI, STAN and transmission time. Unanswered, the
    // reversal is repeated, each time with a STAN of its own.
    let original = original_data(&first);
    let mut stans = vec![first.get(11).unwrap().to_vec()];
    for _ in 0..2 {
        let reversal = spec.decode(&next_message(&mut frames).await).unwrap();
        assert_eq!(&reversal.mti, b"0400");
        assert!(reversal.get(90).unwrap().starts_with(&original));
        stans.push(reversal.get(11).unwrap().to_vec());
    }
    stans.dedup();
    assert_eq!(stans.len(), 3, "every message has its own STAN");
    assert_eq!(link_event(admin, "reversal_sent").await, 1.0);
    let logs = gw.stderr();
    assert!(logs.contains("reversal not answered"), "{logs}");
    assert!(!logs.contains(APPROVED_PAN), "{logs}");
}

async fn next_message(
    frames: &mut tokio::sync::mpsc::UnboundedReceiver<(usize, Vec<u8>)>,
) -> Vec<u8> {
    tokio::time::timeout(Duration::from_secs(5), frames.recv())
        .await
        .expect("the host heard nothing")
        .unwrap()
        .1
}

/// A host that approves every 0100 with "00" but leaves out the approval code (field 38),
/// and reports every message it gets.
async fn forgetful_host() -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (report, seen) = tokio::sync::mpsc::unbounded_channel();
    let spec = demo_spec();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut header = [0u8; 2];
        while socket.read_exact(&mut header).await.is_ok() {
            let mut frame = vec![0; u16::from_be_bytes(header) as usize];
            socket.read_exact(&mut frame).await.unwrap();
            let request = spec.decode(&frame).unwrap();
            let _ = report.send(frame);
            if &request.mti != b"0100" {
                continue;
            }
            let mut answer = corridor::iso8583::Message::new(*b"0110");
            for field in [2, 3, 4, 7, 11, 37, 41, 42, 49] {
                if let Some(value) = request.get(field) {
                    answer.set(field, value.to_vec());
                }
            }
            answer.set(39, b"00".to_vec());
            let bytes = spec.encode(&answer).unwrap();
            socket
                .write_all(&(bytes.len() as u16).to_be_bytes())
                .await
                .unwrap();
            socket.write_all(&bytes).await.unwrap();
        }
    });
    (address, seen)
}

#[tokio::test]
async fn an_approval_that_cannot_be_read_is_reversed() {
    let (host, mut seen) = forgetful_host().await;
    let gw = start(host, "links = 1", free_port());
    let resp = post(
        &gw,
        "/authorize",
        &authorization(APPROVED_PAN, 100, "T0000001"),
    )
    .await;
    let problem = assert_problem(resp, 502, "card-host-failed").await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("being reversed"),
        "{problem}"
    );
    let spec = demo_spec();
    let mut frames = Vec::new();
    for _ in 0..100 {
        while let Ok(frame) = seen.try_recv() {
            frames.push(spec.decode(&frame).unwrap());
        }
        if frames.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(&frames[0].mti, b"0100");
    assert_eq!(&frames[1].mti, b"0400", "the approval was not reversed");
    assert!(frames[1]
        .get(90)
        .unwrap()
        .starts_with(&original_data(&frames[0])));
}

#[tokio::test]
async fn answered_echoes_keep_the_link() {
    let host = card_host().await;
    let admin = free_port();
    let gw = start(host, "links = 1\necho_interval = \"100ms\"", admin);
    approved_again(&gw).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    approved_again(&gw).await;
    assert_eq!(link_event(admin, "echo_failed").await, 0.0);
    assert_eq!(link_event(admin, "reconnect").await, 0.0);
}

#[test]
fn config_errors_name_the_operation_the_retries_and_the_spec_line() {
    let spec = spec_path();
    let upstream = |extra: &str| {
        format!(
            "[upstreams.cards]\ntargets = [\"127.0.0.1:9\"]\n{extra}\n[upstreams.cards.iso8583]\nspec_file = \"{spec}\"\n"
        )
    };
    let route = |operation: &str| {
        format!("[[routes]]\nid = \"r\"\nupstream = \"cards\"\n{operation}\n[routes.match]\npath = \"/x\"\n")
    };
    let checked = check(&gateway_config(
        "",
        &format!("{}{}", upstream(""), route("operation = \"refund\"")),
    ));
    assert!(!checked.ok);
    assert!(
        checked.stderr.contains("no operation \"refund\""),
        "{}",
        checked.stderr
    );
    assert!(
        checked.stderr.contains("authorization"),
        "{}",
        checked.stderr
    );

    let checked = check(&gateway_config(
        "",
        &format!("{}{}", upstream(""), route("")),
    ));
    assert!(
        checked.stderr.contains("name the operation"),
        "{}",
        checked.stderr
    );

    let checked = check(&gateway_config(
        "",
        &format!(
            "{}{}",
            upstream("retries = 1"),
            route("operation = \"authorization\"")
        ),
    ));
    assert!(
        checked.stderr.contains("never retries"),
        "{}",
        checked.stderr
    );

    // A broken spec: the error points into the spec file, at its line.
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("host.toml");
    std::fs::write(
        &broken,
        "mti = \"ascii\"\n[fields]\n2 = { name = \"pan\", type = \"q\", length = 4 }\n",
    )
    .unwrap();
    let text = gateway_config(
        "",
        &format!(
            "[upstreams.cards]\ntargets = [\"127.0.0.1:9\"]\n[upstreams.cards.iso8583]\nspec_file = \"{}\"\n{}",
            broken.display(),
            route("operation = \"authorization\"")
        ),
    );
    let checked = check(&text);
    assert!(!checked.ok);
    assert!(
        checked.stderr.contains(&format!("{}:3:", broken.display())),
        "{}",
        checked.stderr
    );
}

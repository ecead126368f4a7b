use proptest::prelude::*;
use proptest::sample::{select as pick, subsequence};
use proptest::test_runner::{Config, TestRunner};
use serde_json::Value;

use super::*;

fn paths(texts: &[&str]) -> Vec<RulePath> {
    texts.iter().map(|p| RulePath::parse(p).unwrap()).collect()
}

fn found(json: &str, texts: &[&str]) -> Vec<(usize, String)> {
    let paths = paths(texts);
    Paths::new(paths.iter().enumerate())
        .select(json.as_bytes())
        .unwrap()
        .into_iter()
        .map(|f| (f.rule, json[f.span].to_owned()))
        .collect()
}

#[test]
fn finds_what_the_paths_select_in_document_order() {
    let json = r#"{"cards":[{"pan":"4111","n":1},{"x":{"pan":"5555"}},{"pan":"4000"}],"pan":7}"#;
    assert_eq!(
        found(json, &["$.cards[*].pan"]),
        [(0, "\"4111\"".into()), (0, "\"4000\"".into())]
    );
    assert_eq!(
        found(json, &["$.pan", "$..pan"]),
        [
            (1, "\"4111\"".into()),
            (1, "\"5555\"".into()),
            (1, "\"4000\"".into()),
            (0, "7".into()),
        ]
    );
    // Filters and slices are the query's business; only their results matter here.
    assert_eq!(
        found(json, &["$.cards[?@.n == 1].pan", "$.cards[-1:].pan"]),
        [(0, "\"4111\"".into()), (1, "\"4000\"".into())]
    );
    // A container and a value inside it, both ways.
    for texts in [&["$.a", "$.a.b"][..], &["$.a", "$.a[?@ == 'x']"]] {
        assert_eq!(
            found(r#"{"a":{"b":"x"}}"#, texts),
            [(0, r#"{"b":"x"}"#.into()), (1, "\"x\"".into())]
        );
    }
    assert!(found(json, &["$.none", "$.cards[9].pan"]).is_empty());
    assert_eq!(found(" \"s\" ", &["$"]), [(0, "\"s\"".into())]);
    assert_eq!(
        found(" [ 1 , [ ] ] ", &["$", "$[1]"]),
        [(0, "[ 1 , [ ] ]".into()), (1, "[ ]".into())]
    );
}

#[test]
fn names_are_matched_decoded_and_every_duplicate_is_found() {
    let json = r#"{ "p\u0061n" : "1", "pan":"2" , "x":[ null , "a\"b", -1.5e3 ]}"#;
    for extra in ["$.x[*]", "$.x[0:]"] {
        assert_eq!(
            found(json, &["$.pan", extra]),
            [
                (0, "\"1\"".into()),
                (0, "\"2\"".into()),
                (1, "null".into()),
                (1, r#""a\"b""#.into()),
                (1, "-1.5e3".into()),
            ],
            "{extra}"
        );
        let paths = paths(&[extra]);
        let values: Vec<Selected<'_>> = (Paths::new(paths.iter().enumerate()))
            .select(json.as_bytes())
            .unwrap()
            .into_iter()
            .map(|f| f.value)
            .collect();
        assert_eq!(
            values,
            [
                Selected::Null,
                Selected::String("a\"b".into()),
                Selected::Number("-1.5e3")
            ]
        );
    }
    let shown = format!(
        "{:?} {:?}",
        Selected::String("4111111111111111".into()),
        Selected::Number("4111111111111111")
    );
    assert_eq!(shown, "String(<redacted>) Number(<redacted>)");
}

#[test]
fn simple_paths_follow_every_duplicate_even_where_the_document_keeps_another() {
    // The parsed document keeps the last `cards`, empty: only the simple way sees the PAN.
    let json = r#"{"cards":[{"pan":"4111"}],"cards":[]}"#;
    assert_eq!(found(json, &["$.cards[*].pan"]), [(0, "\"4111\"".into())]);
    assert!(found(json, &["$.cards[*].pan", "$.x[-1]"]).is_empty());
}

#[test]
fn the_simple_way_takes_numbers_the_document_cannot_hold() {
    let json = r#"{"big":1e400,"pan":"4111"}"#;
    assert_eq!(found(json, &["$.pan"]), [(0, "\"4111\"".into())]);
    let document = Paths::new(paths(&["$.pan[-1]"]).iter().enumerate());
    assert!(document.select(json.as_bytes()).is_err());
}

#[test]
fn the_simple_way_follows_paths_128_levels_deep_and_skips_the_rest_at_any_depth() {
    let nested =
        |depth: usize| format!("{}\"pan\"{}", "{\"pan\":".repeat(depth), "}".repeat(depth));
    let paths = Paths::new(paths(&["$..pan"]).iter().enumerate());
    // Every level is selected; the innermost is the string "pan".
    let json = nested(128);
    let selected = paths.select(json.as_bytes()).unwrap();
    assert_eq!(selected.len(), 128);
    assert_eq!(selected[0].span, 7..json.len() - 1);
    assert_eq!(selected[127].value, Selected::String("pan".into()));
    let err = paths.select(nested(129).as_bytes()).unwrap_err();
    assert_eq!(err, "the body nests deeper than 128 levels");
    // No recursion either way: serde_json's check and the walk both hold their place in
    // the heap.
    let deep = 100_000;
    let json = format!("{}{}", "[".repeat(deep), "]".repeat(deep));
    assert!(paths.select(json.as_bytes()).is_err());
    let json = format!(
        r#"{{"a":{}{},"pan":"4111"}}"#,
        "[".repeat(deep),
        "]".repeat(deep)
    );
    assert_eq!(found(&json, &["$.pan"]), [(0, "\"4111\"".into())]);
}

#[test]
fn refuses_what_is_not_json_and_never_quotes_it() {
    for texts in [&["$.pan"][..], &["$.pan[-1]"]] {
        let paths = paths(texts);
        for (body, expected) in [
            (&br#"{"pan":"4111111111111111""#[..], "ends early"),
            (br#"{"pan":4111111111111111x}"#, "syntax error"),
            (b"{\"pan\":\"\xff4111\"}", "not UTF-8"),
        ] {
            let err = Paths::new(paths.iter().enumerate())
                .select(body)
                .unwrap_err();
            assert!(err.contains(expected), "{err}");
            assert!(!err.contains("4111"), "{err}");
        }
    }
    // A member name that is no Unicode string cannot be matched, nor let through; nor can
    // a selected string, which would go out as it is. (serde_json's check of the text lets
    // lone surrogates through; parsing the document refuses them.)
    for texts in [&["$.pan"][..], &["$.pan[-1]"]] {
        let paths = Paths::new(paths(texts).iter().enumerate());
        for body in [
            &br#"{"\ud800":1}"#[..],
            br#"{"pan":"4111111111111111\ud800"}"#,
        ] {
            assert!(paths.select(body).is_err(), "{texts:?}");
        }
    }
    // Elsewhere, on the simple way, they pass: nothing selected is there.
    let paths = Paths::new(paths(&["$.pan"]).iter().enumerate());
    let body = br#"{"note":"\ud800","pan":"4111111111111111"}"#;
    assert_eq!(paths.select(body).unwrap().len(), 1);
}

#[test]
fn splices_edits_as_json_strings_and_keeps_every_other_byte() {
    let body =
        br#"{"amount": 10.50, "pan" : "4111111111111111", "big":1e400000000000000000000, "n": 42}"#;
    let start = body.windows(3).position(|w| w == b"\"41").unwrap();
    let n = body.windows(2).position(|w| w == b"42").unwrap();
    let out = splice(
        body,
        vec![(n..n + 2, "**".into()), (start..start + 18, "to\"k".into())],
    );
    assert_eq!(
        &out[..],
        &br#"{"amount": 10.50, "pan" : "to\"k", "big":1e400000000000000000000, "n": "**"}"#[..]
    );
}

#[test]
fn simple_paths_are_recognized_and_the_rest_left_to_the_query() {
    use simple::segments;
    for (path, count) in [
        ("$", 0),
        ("$.cards[*].pan", 3),
        ("$..pan", 1),
        ("$..*", 1),
        ("$..[0,'a',*]", 1),
        ("$['a b'][\"x'y\"].é_1", 3),
        ("$.a[12]..b", 3),
    ] {
        assert!(JsonPath::parse(path).is_ok(), "{path}");
        assert_eq!(segments(path).map(|s| s.len()), Some(count), "{path}");
    }
    for path in [
        "$.a[?@.b]",
        "$.a[-1]",
        "$.a[0:2]",
        "$ .a",
        "$[ 0 ]",
        "$['a\\'b']",
        "$['\\u0061']",
        "$.a[?length(@) > 1]",
    ] {
        assert!(JsonPath::parse(path).is_ok(), "{path}");
        assert_eq!(segments(path), None, "{path}");
    }
}

/// Member names of the generated documents, some to be escaped in the text.
const NAMES: [&str; 6] = ["a", "b", "pan", "c d", "é", "x\"y"];

/// Simple paths over [`NAMES`].
const PATHS: [&str; 20] = [
    "$",
    "$.a",
    "$.pan",
    "$..pan",
    "$.*",
    "$[*]",
    "$..*",
    "$..[*]",
    "$.a[0]",
    "$..[1]",
    "$['a','b']",
    "$[\"a\"][*].b",
    "$.a..b",
    "$..a..b",
    "$[0,1]",
    "$..['b',0]",
    "$[*][*]",
    "$['c d']",
    "$..['x\"y']",
    "$..é[0]",
];

fn documents() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (-1000i64..1000).prop_map(Value::from),
        // Long enough for quotes and backslashes at every offset of an 8-byte read.
        "[a-z4 \"\\\\é]{0,20}".prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 48, 5, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            proptest::collection::btree_map(pick(&NAMES[..]), inner, 0..5).prop_map(|map| {
                Value::Object(map.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    })
}

/// On documents without duplicate members, the simple way selects exactly what the query
/// on the parsed document does, compact or pretty-printed.
#[test]
fn the_simple_way_agrees_with_the_query() {
    let mut runner = TestRunner::new(Config {
        cases: 1500,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (
        documents(),
        subsequence(PATHS.to_vec(), 1..4),
        any::<bool>(),
    );
    runner
        .run(&strategy, |(document, chosen, pretty)| {
            let json = if pretty {
                serde_json::to_string_pretty(&document).unwrap()
            } else {
                serde_json::to_string(&document).unwrap()
            };
            let simple = paths(&chosen);
            prop_assert!(simple.iter().all(|p| p.simple.is_some()));
            let by_walk = (Paths::new(simple.iter().enumerate()))
                .select(json.as_bytes())
                .unwrap();
            let queries = simple.iter().map(|p| &p.query).enumerate();
            let by_query = document::select(&json, &document, queries);
            prop_assert_eq!(&by_walk, &by_query, "{:?} in {}", chosen, json);
            Ok(())
        })
        .unwrap();
}

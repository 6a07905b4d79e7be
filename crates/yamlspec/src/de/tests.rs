use crate::{from_node, from_str, parse_documents, Located, SpecError};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Spec {
    scenarios: BTreeMap<String, Scenario>,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Scenario {
    rate: f64,
    #[serde(with = "humantime_serde")]
    duration: Duration,
    #[serde(default)]
    requests: Vec<Request>,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Request {
    name: String,
    #[serde(default = "one")]
    weight: u32,
}

fn one() -> u32 {
    1
}

fn err<T: serde::de::DeserializeOwned + std::fmt::Debug>(text: &str) -> SpecError {
    from_str::<T>(text).expect_err("must not read")
}

#[test]
fn reads_a_nested_spec() {
    let spec: Spec = from_str(
        "scenarios:\n  tight:\n    rate: 200\n    duration: 3s\n    requests:\n      - name: health\n      - {name: create, weight: 5}\n",
    )
    .expect("reads");
    let tight = &spec.scenarios["tight"];
    assert_eq!(tight.rate, 200.0);
    assert_eq!(tight.duration, Duration::from_secs(3));
    assert_eq!(
        tight.requests,
        vec![
            Request {
                name: "health".into(),
                weight: 1
            },
            Request {
                name: "create".into(),
                weight: 5
            },
        ]
    );
}

#[test]
fn an_unknown_field_names_itself_its_line_and_the_expected_fields() {
    let e = err::<Spec>("scenarios:\n  tight:\n    rate: 1\n    duration: 1s\n    rat: 2\n");
    assert_eq!(e.line, 5);
    assert_eq!(e.path, "scenarios.tight.rat");
    assert!(e.message.contains("unknown field `rat`"), "{e}");
    assert!(e.message.contains("`rate`, `duration`, `requests`"), "{e}");
    assert_eq!(
        e.to_string(),
        format!("line 5: scenarios.tight.rat: {}", e.message)
    );
}

#[test]
fn a_wrong_type_names_the_value_line_and_path() {
    let e = err::<Spec>("scenarios:\n  tight:\n    duration: 1s\n    rate: fast\n");
    assert_eq!(
        e,
        SpecError {
            line: 4,
            path: "scenarios.tight.rate".into(),
            message: "invalid type: string \"fast\", expected f64".into(),
        }
    );
}

#[test]
fn list_items_show_their_index_in_the_path() {
    let e = err::<Spec>(
        "scenarios:\n  tight:\n    rate: 1\n    duration: 1s\n    requests:\n      - name: a\n      - name: b\n      - name: c\n        weight: heavy\n",
    );
    assert_eq!(e.line, 9);
    assert_eq!(e.path, "scenarios.tight.requests[2].weight");
    assert!(e.message.contains("expected u32"), "{e}");
}

#[test]
fn a_missing_field_points_at_the_key_of_its_map() {
    let e = err::<Spec>("scenarios:\n  tight:\n    rate: 1\n");
    assert_eq!(e.line, 2);
    assert_eq!(e.path, "scenarios.tight");
    assert_eq!(e.message, "missing field `duration`");
    let e = err::<Spec>("{}\n");
    assert_eq!((e.line, e.path.as_str()), (1, ""));
    assert_eq!(e.to_string(), "line 1: missing field `scenarios`");
}

#[test]
fn a_bad_duration_is_located() {
    let e = err::<Spec>("scenarios:\n  tight:\n    rate: 1\n    duration: 5\n");
    assert_eq!((e.line, e.path.as_str()), (4, "scenarios.tight.duration"));
    let e = err::<Spec>("scenarios:\n  tight:\n    rate: 1\n    duration: 5 parsecs\n");
    assert_eq!(e.line, 4);
    assert!(e.message.contains("expected a duration"), "{e}");
}

#[derive(Debug, Deserialize, PartialEq)]
struct Scalars {
    flag: bool,
    count: i64,
    big: u64,
    ratio: f64,
    text: String,
    any: serde_json::Value,
}

#[test]
fn unquoted_scalars_follow_the_core_schema() {
    let s: Scalars = from_str(
        "flag: true\ncount: -3\nbig: 0x10\nratio: 1e-3\ntext: hello\nany: [null, True, 7, -7, 2.5, .inf, yes, '8', {k: ~}]\n",
    )
    .expect("reads");
    assert!(s.flag);
    assert_eq!((s.count, s.big, s.ratio), (-3, 16, 0.001));
    assert_eq!(s.text, "hello");
    assert_eq!(
        s.any,
        serde_json::json!([null, true, 7, -7, 2.5, null, "yes", "8", {"k": null}])
    );
}

#[test]
fn a_string_field_takes_any_scalars_text() {
    #[derive(Debug, Deserialize)]
    struct Texts {
        a: String,
        b: String,
        c: String,
        d: String,
        e: char,
    }
    let t: Texts = from_str("a: 30\nb: true\nc: 1.50\nd: 0x1F\ne: x\n").expect("reads");
    assert_eq!(
        (t.a.as_str(), t.b.as_str(), t.c.as_str(), t.d.as_str(), t.e),
        ("30", "true", "1.50", "0x1F", 'x')
    );
}

#[test]
fn quoted_numbers_stay_strings() {
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Port {
        port: u16,
    }
    let e = err::<Port>("port: \"8080\"\n");
    assert_eq!(e.path, "port");
    assert_eq!(e.message, "invalid type: string \"8080\", expected u16");
    let value: serde_json::Value = from_str("a: '30'\nb: 30\n").expect("reads");
    assert_eq!(value, serde_json::json!({"a": "30", "b": 30}));
}

#[test]
fn wrong_scalar_types_are_refused() {
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Typed {
        flag: Option<bool>,
        small: Option<u8>,
        name: Option<String>,
    }
    let e = err::<Typed>("flag: yes\n");
    assert_eq!(
        e.message,
        "invalid type: string \"yes\", expected a boolean"
    );
    let e = err::<Typed>("small: 300\n");
    assert_eq!(e.message, "invalid value: integer `300`, expected u8");
    let e = err::<Typed>("small: 99999999999999999999999\n");
    assert!(e.message.contains("expected u8"), "{e}");
    let e = err::<Typed>("name: [a]\n");
    assert_eq!(e.message, "invalid type: sequence, expected a string");
    assert_eq!(e.line, 1);
}

#[test]
fn null_is_none_and_not_a_string() {
    #[derive(Debug, Deserialize, PartialEq)]
    struct Maybe {
        a: Option<u32>,
        b: Option<u32>,
        #[serde(default)]
        c: Option<u32>,
        d: Option<String>,
    }
    let m: Maybe = from_str("a: ~\nb:\nd: 'null'\n").expect("reads");
    assert_eq!(
        m,
        Maybe {
            a: None,
            b: None,
            c: None,
            d: Some("null".into())
        }
    );
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Named {
        name: String,
        other: u8,
    }
    let e = err::<Named>("name:\nother: 1\n");
    assert_eq!((e.line, e.path.as_str()), (1, "name"));
    assert_eq!(e.message, "invalid type: null, expected a string");
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
enum Executor {
    ConstantArrivalRate,
    Ramping { start: u32 },
    Fixed(u32),
    Pair(u8, u8),
}

#[test]
fn externally_tagged_enums() {
    let e: Vec<Executor> =
        from_str("- constant-arrival-rate\n- ramping: {start: 3}\n- fixed: 9\n- pair: [1, 2]\n- {constant-arrival-rate: ~}\n")
            .expect("reads");
    assert_eq!(
        e,
        vec![
            Executor::ConstantArrivalRate,
            Executor::Ramping { start: 3 },
            Executor::Fixed(9),
            Executor::Pair(1, 2),
            Executor::ConstantArrivalRate,
        ]
    );
}

#[test]
fn enum_errors_are_located() {
    let e = err::<BTreeMap<String, Executor>>("a: fixed\nb: constant\n");
    assert_eq!((e.line, e.path.as_str()), (1, "a"));
    assert_eq!(
        e.message,
        "invalid type: unit variant, expected newtype variant"
    );
    let e = err::<BTreeMap<String, Executor>>("a: constant-arrival-rate\nb: constant\n");
    assert_eq!((e.line, e.path.as_str()), (2, "b"));
    assert!(
        e.message
            .starts_with("unknown variant `constant`, expected one of"),
        "{e}"
    );
    let e = err::<BTreeMap<String, Executor>>("a:\n  ramping:\n    start: x\n");
    assert_eq!((e.line, e.path.as_str()), (3, "a.ramping.start"));
    let e = err::<BTreeMap<String, Executor>>("a: {fixed: 1, pair: [1, 2]}\n");
    assert!(e.message.contains("a map with 2 keys"), "{e}");
    let e = err::<BTreeMap<String, Executor>>("a: {constant-arrival-rate: 5}\n");
    assert_eq!(
        e.message,
        "invalid type: integer `5`, expected unit variant"
    );
    assert_eq!(e.path, "a.constant-arrival-rate");
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(untagged)]
enum Rate {
    PerSecond(f64),
    Expression(String),
}

#[test]
fn untagged_enums_go_through_deserialize_any() {
    let rates: Vec<Rate> = from_str("[21, 0.5, dau.peak, '25']\n").expect("reads");
    assert_eq!(
        rates,
        vec![
            Rate::PerSecond(21.0),
            Rate::PerSecond(0.5),
            Rate::Expression("dau.peak".into()),
            Rate::Expression("25".into()),
        ]
    );
    let e = err::<Vec<Rate>>("- 1\n- [2]\n");
    assert_eq!((e.line, e.path.as_str()), (2, "[1]"));
    assert!(e.message.contains("did not match any variant"), "{e}");
}

#[test]
fn internally_tagged_enums_go_through_deserialize_any() {
    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(tag = "kind", rename_all = "lowercase")]
    enum Capture {
        Json { pointer: String },
        Header { name: String },
    }
    let c: Vec<Capture> =
        from_str("- {kind: json, pointer: /slug}\n- kind: header\n  name: location\n")
            .expect("reads");
    assert_eq!(
        c,
        vec![
            Capture::Json {
                pointer: "/slug".into()
            },
            Capture::Header {
                name: "location".into()
            },
        ]
    );
    let e = err::<Vec<Capture>>("- {kind: json, pointer: /slug}\n- kind: cookie\n");
    assert_eq!((e.line, e.path.as_str()), (2, "[1].kind"));
    assert!(e.message.contains("unknown variant `cookie`"), "{e}");
}

#[test]
fn map_keys_read_as_strings_newtypes_and_numbers() {
    #[derive(Debug, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
    struct PoolName(String);
    let by_newtype: BTreeMap<PoolName, u32> = from_str("slugs: 1\n7: 2\n").expect("reads");
    assert_eq!(by_newtype[&PoolName("7".into())], 2);
    let by_number: HashMap<u16, String> = from_str("200: ok\n404: missing\n").expect("reads");
    assert_eq!(by_number[&404], "missing");
    let e = err::<HashMap<u16, String>>("200: ok\nfour: missing\n");
    assert_eq!((e.line, e.path.as_str()), (2, "four"));
    assert_eq!(e.message, "invalid type: string \"four\", expected u16");
}

#[test]
fn newtype_structs_and_tuples() {
    #[derive(Debug, Deserialize, PartialEq)]
    struct Weight(u32);
    let w: Vec<Weight> = from_str("[1, 2]").expect("reads");
    assert_eq!(w, vec![Weight(1), Weight(2)]);
    let pair: (u8, String) = from_str("[1, a]").expect("reads");
    assert_eq!(pair, (1, "a".into()));
    let e = err::<(u8, u8)>("[1, 2, 3]");
    assert!(e.message.contains("invalid length 3"), "{e}");
    let e = err::<[u8; 3]>("[1, 2]");
    assert!(e.message.contains("invalid length 2"), "{e}");
}

#[test]
fn located_records_lines() {
    #[derive(Debug, Deserialize)]
    struct Doc {
        name: Located<String>,
        scenario: Located<BTreeMap<String, u32>>,
        items: Vec<Located<u32>>,
        maybe: Option<Located<Executor>>,
    }
    let doc: Doc =
        from_str("name: a\n\nscenario:\n  x: 1\n  y: 2\nitems:\n  - 5\n  - 6\nmaybe: {fixed: 3}\n")
            .expect("reads");
    assert_eq!(doc.name.line, 1);
    assert_eq!(doc.name.as_str(), "a");
    assert_eq!(doc.scenario.line, 3);
    assert_eq!(doc.scenario.len(), 2);
    let lines: Vec<(usize, u32)> = doc.items.iter().map(|i| (i.line, **i)).collect();
    assert_eq!(lines, vec![(7, 5), (8, 6)]);
    let maybe = doc.maybe.expect("present");
    assert_eq!((maybe.line, maybe.into_inner()), (9, Executor::Fixed(3)));
}

#[test]
fn located_errors_keep_the_inner_place() {
    let e = err::<BTreeMap<String, Located<u32>>>("a: 1\nb: x\n");
    assert_eq!((e.line, e.path.as_str()), (2, "b"));
    assert!(e.message.contains("expected u32"), "{e}");
}

#[test]
fn located_is_refused_by_other_deserializers() {
    let e = serde_json::from_str::<Located<u32>>("1").expect_err("json has no lines");
    assert!(e.to_string().contains("read by yamlspec"), "{e}");
}

#[test]
fn located_has_the_schema_of_what_it_holds() {
    #[derive(schemars::JsonSchema)]
    #[allow(dead_code)]
    struct WithLines {
        rate: Located<f64>,
        name: Option<Located<String>>,
        items: Vec<Located<u32>>,
    }
    #[derive(schemars::JsonSchema)]
    #[allow(dead_code)]
    struct Plain {
        rate: f64,
        name: Option<String>,
        items: Vec<u32>,
    }
    let with = serde_json::to_value(schemars::schema_for!(WithLines)).expect("json");
    let plain = serde_json::to_value(schemars::schema_for!(Plain)).expect("json");
    assert_eq!(with["properties"], plain["properties"]);
    assert_eq!(with["required"], plain["required"]);
    assert_eq!(with["required"], serde_json::json!(["rate", "items"]));
}

#[test]
fn located_serializes_as_its_value() {
    let located = Located {
        line: 4,
        value: vec![1, 2],
    };
    assert_eq!(serde_json::to_string(&located).expect("json"), "[1,2]");
}

#[test]
fn whole_file_problems_keep_their_line() {
    let e = err::<Spec>("");
    assert_eq!(e.line, 1);
    assert!(e.message.contains("no YAML document"), "{e}");
    let e = err::<Spec>("# only a comment\n");
    assert!(e.message.contains("no YAML document"), "{e}");
    let e = err::<serde_json::Value>("a: 1\n---\nb: 2\n");
    assert_eq!(e.line, 3);
    assert!(e.message.contains("found 2"), "{e}");
    let e = err::<Spec>("scenarios:\n  tight: [1, 2\n  other: 3\n");
    assert!(e.line >= 2, "{e:?}");
    assert_eq!(e.path, "");
    let e = err::<serde_json::Value>("a: 1\nb: 2\na: 3\n");
    assert_eq!(e.line, 3);
    assert!(e.message.contains("duplicate key `a`"), "{e}");
}

#[test]
fn the_anchor_bomb_is_still_refused() {
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10 {
        let p = i - 1;
        text.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    let e = err::<serde_json::Value>(&text);
    assert!(e.message.contains("alias bomb"), "{e}");
    assert!(e.line >= 4, "{e:?}");
}

#[test]
fn from_node_reads_part_of_a_document_and_may_borrow() {
    let docs = parse_documents("meta: {owner: team}\nbody: [1, 2]\n").expect("parses");
    let crate::Value::Map(entries) = &docs[0].value else {
        panic!("a map")
    };
    let owner: HashMap<&str, &str> = from_node(&entries[0].value).expect("reads");
    assert_eq!(owner["owner"], "team");
    let e = from_node::<Vec<bool>>(&entries[1].value).expect_err("numbers");
    assert_eq!((e.line, e.path.as_str()), (2, "[0]"));
}

#[test]
fn errors_a_deserialize_impl_makes_after_reading_are_located() {
    fn positive<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        let rate = f64::deserialize(d)?;
        if rate > 0.0 {
            Ok(rate)
        } else {
            Err(serde::de::Error::custom("rate must be positive"))
        }
    }
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Positive {
        #[serde(deserialize_with = "positive")]
        rate: f64,
    }
    let e = err::<Vec<Positive>>("- rate: 1\n- rate: -2\n");
    assert_eq!(e.to_string(), "line 2: [1].rate: rate must be positive");
}

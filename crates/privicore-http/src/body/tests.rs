use super::*;
use proptest::prelude::*;
use serde_json::json;

fn run<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

fn parse(ct: Option<&str>, body: &'static [u8]) -> Result<Fields, Error> {
    run(parse_body(ct, bytes::Bytes::from_static(body)))
}

#[test]
fn form_json_and_multipart_agree() {
    let form = parse(
        Some("application/x-www-form-urlencoded"),
        b"username=alice%40example.com&password=correct+horse",
    )
    .unwrap();
    let json = parse(
        Some("application/json; charset=utf-8"),
        br#"{"username":"alice@example.com","password":"correct horse"}"#,
    )
    .unwrap();
    let multipart = parse(
        Some("multipart/form-data; boundary=XyZ"),
        b"--XyZ\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nalice@example.com\r\n--XyZ\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\ncorrect horse\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.bin\"\r\n\r\nbinary\r\n--XyZ--\r\n",
    )
    .unwrap();
    for fields in [&form, &json, &multipart] {
        assert_eq!(fields.str("username").unwrap(), "alice@example.com");
        assert_eq!(fields.str("password").unwrap(), "correct horse");
        assert!(!fields.has("file"));
    }
}

#[test]
fn bracket_notation_builds_lists_and_objects() {
    let f = parse(
        Some("application/x-www-form-urlencoded"),
        b"scopes[]=a&scopes[]=b&meta[file][fileName]=a.pdf&meta[type]=invoice",
    )
    .unwrap();
    assert_eq!(f.0["scopes"], json!(["a", "b"]));
    assert_eq!(
        f.0["meta"],
        json!({"file": {"fileName": "a.pdf"}, "type": "invoice"})
    );
    assert_eq!(
        parse(
            Some("application/x-www-form-urlencoded"),
            b"a[b][c][d][e]=1"
        )
        .unwrap_err()
        .reason,
        Reason::RequestMalformed
    );
    assert_eq!(
        parse(Some("application/x-www-form-urlencoded"), b"a=1&a[b]=2")
            .unwrap_err()
            .reason,
        Reason::RequestMalformed
    );
    // Unbalanced brackets are a literal name.
    let f = parse(Some("application/x-www-form-urlencoded"), b"a[b=1").unwrap();
    assert_eq!(f.str("a[b").unwrap(), "1");
}

#[test]
fn empty_bodies_and_content_types() {
    assert!(parse(None, b"").unwrap().0.is_empty());
    assert!(parse(Some("application/json"), b"").unwrap().0.is_empty());
    assert_eq!(
        parse(None, b"x=1").unwrap_err().reason,
        Reason::RequestUnsupportedMediaType
    );
    assert_eq!(
        parse(Some("text/plain"), b"x").unwrap_err().reason,
        Reason::RequestUnsupportedMediaType
    );
    assert_eq!(
        parse(Some("application/json"), b"[1]").unwrap_err().reason,
        Reason::RequestMalformed
    );
    assert_eq!(
        parse(Some("application/json"), b"{").unwrap_err().reason,
        Reason::RequestMalformed
    );
    assert_eq!(
        parse(Some("multipart/form-data"), b"--x--")
            .unwrap_err()
            .reason,
        Reason::RequestMalformed
    );
    assert_eq!(
        parse(Some("application/x-www-form-urlencoded"), b"a=%ff")
            .unwrap_err()
            .reason,
        Reason::RequestMalformed
    );
}

#[test]
fn typed_accessors() {
    let f = parse(
        Some("application/json"),
        br#"{"n":5,"s":"7","neg":"-3","f":1.5,"b":"TRUE","z":0,"list":[1],"empty":"","bad":"x1"}"#,
    )
    .unwrap();
    assert_eq!(f.opt_int("n").unwrap(), Some(5));
    assert_eq!(f.opt_int("s").unwrap(), Some(7));
    assert_eq!(f.opt_int("neg").unwrap(), Some(-3));
    assert_eq!(
        f.opt_int("f").unwrap_err().reason,
        Reason::ValidationInvalidType
    );
    assert_eq!(
        f.opt_int("bad").unwrap_err().reason,
        Reason::ValidationInvalidType
    );
    assert_eq!(f.opt_bool("b").unwrap(), Some(true));
    assert_eq!(
        f.opt_bool("n").unwrap_err().reason,
        Reason::ValidationInvalidType
    );
    assert_eq!(
        f.str("n").unwrap_err().reason,
        Reason::ValidationInvalidType
    );
    assert_eq!(f.str("list").unwrap_err().field.as_deref(), Some("list"));
    assert_eq!(
        f.str("empty").unwrap_err().reason,
        Reason::ValidationMissingField
    );
    assert_eq!(
        f.str("absent").unwrap_err().reason,
        Reason::ValidationMissingField
    );
    assert_eq!(f.opt_int("absent").unwrap(), None);
}

const CONTENT_TYPES: &[Option<&str>] = &[
    None,
    Some("application/json"),
    Some("application/json; charset=utf-8"),
    Some("application/x-www-form-urlencoded"),
    Some("multipart/form-data; boundary=b"),
    Some("multipart/form-data"),
    Some("text/plain"),
    Some("application/octet-stream"),
    Some(""),
    Some(";;;"),
];

fn only_client_errors(result: Result<Fields, Error>) -> Result<(), TestCaseError> {
    if let Err(e) = result {
        prop_assert!(
            matches!(
                e.reason,
                Reason::RequestMalformed | Reason::RequestUnsupportedMediaType
            ),
            "unexpected {:?}",
            e.reason
        );
    }
    Ok(())
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_or_fail_internally(
        body in proptest::collection::vec(any::<u8>(), 0..512),
        ct in 0..CONTENT_TYPES.len(),
    ) {
        only_client_errors(run(parse_body(CONTENT_TYPES[ct], bytes::Bytes::from(body))))?;
    }

    #[test]
    fn arbitrary_form_keys_never_panic(body in "([a-z\\[\\]%+=&0-9]{0,12}){0,20}") {
        only_client_errors(run(parse_body(
            Some("application/x-www-form-urlencoded"),
            bytes::Bytes::from(body),
        )))?;
    }

    #[test]
    fn arbitrary_multipart_never_panics(
        parts in proptest::collection::vec(("[a-z\\[\\]]{0,8}", any::<Vec<u8>>()), 0..5),
        trailer in any::<bool>(),
    ) {
        let mut body = Vec::new();
        for (name, value) in parts {
            body.extend_from_slice(b"--b\r\nContent-Disposition: form-data; name=\"");
            body.extend_from_slice(name.as_bytes());
            body.extend_from_slice(b"\"\r\n\r\n");
            body.extend_from_slice(&value);
            body.extend_from_slice(b"\r\n");
        }
        if trailer {
            body.extend_from_slice(b"--b--\r\n");
        }
        only_client_errors(run(parse_body(
            Some("multipart/form-data; boundary=b"),
            bytes::Bytes::from(body),
        )))?;
    }

    #[test]
    fn arbitrary_json_values_only_yield_typed_errors(value in any_json()) {
        let body = serde_json::to_vec(&json!({ "field": value })).unwrap();
        let fields = run(parse_body(Some("application/json"), bytes::Bytes::from(body))).unwrap();
        for result in [
            fields.opt_str("field").map(|_| ()),
            fields.opt_int("field").map(|_| ()),
            fields.opt_bool("field").map(|_| ()),
        ] {
            if let Err(e) = result {
                prop_assert_eq!(e.reason, Reason::ValidationInvalidType);
                prop_assert_eq!(e.field.as_deref(), Some("field"));
            }
        }
    }
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        "\\PC{0,40}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z]{1,4}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[test]
fn lists_arrive_as_arrays_bracket_keys_or_comma_strings() {
    let json = parse(
        Some("application/json"),
        br#"{"ids":["101", 102, " "],"csv":"a, b,,c","one":7,"none":[],"bad":{"a":1}}"#,
    )
    .unwrap();
    assert_eq!(
        json.opt_list("ids").unwrap(),
        Some(vec![json!("101"), json!(102)])
    );
    assert_eq!(
        json.opt_str_list("csv").unwrap(),
        Some(vec!["a".to_owned(), "b".into(), "c".into()])
    );
    assert_eq!(json.opt_list("one").unwrap(), Some(vec![json!(7)]));
    assert_eq!(json.opt_list("none").unwrap(), None);
    assert_eq!(json.opt_list("absent").unwrap(), None);
    assert_eq!(
        json.opt_list("bad").unwrap_err().reason,
        Reason::ValidationInvalidType
    );
    assert_eq!(
        json.opt_str_list("ids").unwrap_err().reason,
        Reason::ValidationInvalidType
    );
    let form = parse(
        Some("application/x-www-form-urlencoded"),
        b"ids[]=101&ids[]=102&reset=&gone",
    )
    .unwrap();
    assert_eq!(
        form.opt_str_list("ids").unwrap(),
        Some(vec!["101".to_owned(), "102".into()])
    );
    assert!(form.reset("reset") && form.sent("reset") && !form.reset("ids"));
    let null = parse(Some("application/json"), br#"{"quorumSize":null}"#).unwrap();
    assert!(null.reset("quorumSize"));
    assert!(!null.reset("other") && !null.sent("other"));
}

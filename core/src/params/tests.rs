use super::*;
use serde_json::json;

fn spec(name: &str, kind: ParameterType, required: bool) -> ParameterSpec {
    ParameterSpec {
        name: name.into(),
        kind,
        target: name.into(),
        required,
        description: String::new(),
        max_length: Some(10),
        minimum: None,
        maximum: None,
        allowed_values: Vec::new(),
        location: ParameterLocation::Body,
        transform: None,
    }
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

#[test]
fn values_are_coerced_and_placed_at_their_targets() {
    let mut nested = spec("summary", ParameterType::String, true);
    nested.target = "fields.summary".into();
    let specs = [
        nested,
        spec("n", ParameterType::Integer, false),
        spec("b", ParameterType::Boolean, false),
    ];
    let body =
        build_body(&specs, &obj(json!({"summary":"hi","n":"42","b":"true"}))).expect("valid");
    assert_eq!(body, json!({"fields":{"summary":"hi"},"n":42,"b":true}));
}

#[test]
fn numbers_reach_the_vendor_with_the_digits_they_were_sent_with() {
    // Parsed as the worker parses a request, then written as it writes the vendor's body.
    // Without serde_json's `float_roundtrip` the first became 10587.436593658977 and the
    // second 1.0 (serde-rs/json#707, #1303): an amount changed on its way through.
    let sent = r#"{"Amount": 10587.436593658975, "Share": 0.9999999999999999, "Note": 122.416294033786585}"#;
    let values: Map<String, Value> = serde_json::from_str(sent).expect("valid JSON");
    let specs = [
        spec("Amount", ParameterType::Number, true),
        spec("Share", ParameterType::Number, true),
        ParameterSpec {
            max_length: None,
            ..spec("Note", ParameterType::String, true)
        },
    ];
    let body =
        serde_json::to_string(&build_body(&specs, &values).expect("valid")).expect("serialises");
    assert_eq!(
        body,
        r#"{"Amount":10587.436593658975,"Note":"122.41629403378658","Share":0.9999999999999999}"#
    );
}

#[test]
fn a_missing_required_parameter_is_named() {
    let e = build_body(&[spec("Company", ParameterType::String, true)], &Map::new()).unwrap_err();
    assert_eq!(e.code, ExecutionErrorCode::MissingParameter);
    assert_eq!(e.parameter, "Company");
    assert!(e.message.contains("'Company'"));
}

#[test]
fn a_number_for_a_date_is_refused_with_the_expected_format() {
    let e = build_body(
        &[spec("CloseDate", ParameterType::Date, true)],
        &obj(json!({"CloseDate": 20260101})),
    )
    .unwrap_err();
    assert_eq!(e.code, ExecutionErrorCode::InvalidParameter);
    assert_eq!(
        e.message,
        "parameter 'CloseDate' must be a date (YYYY-MM-DD), got the number 20260101"
    );
}

#[test]
fn an_impossible_calendar_date_is_refused() {
    let e = build_body(
        &[spec("d", ParameterType::Date, true)],
        &obj(json!({"d":"2026-02-30"})),
    )
    .unwrap_err();
    assert_eq!(e.parameter, "d");
}

#[test]
fn dates_and_times_are_sent_as_the_vendors_read_them() {
    let specs = [
        spec("d", ParameterType::Date, false),
        spec("t", ParameterType::DateTime, false),
    ]
    .map(|s| ParameterSpec {
        max_length: None,
        ..s
    });
    for (given, sent) in [
        (json!({"d": "2026-02-03"}), json!({"d": "2026-02-03"})),
        (json!({"d": "2026-2-3"}), json!({"d": "2026-02-03"})),
        (json!({"d": "+2026-02-03"}), json!({"d": "2026-02-03"})),
        (json!({"d": "0001-01-01"}), json!({"d": "0001-01-01"})),
        (
            json!({"t": "2026-02-03 10:00:00.5z"}),
            json!({"t": "2026-02-03T10:00:00.5Z"}),
        ),
        (
            json!({"t": "2026-02-03t10:00:00+01:00"}),
            json!({"t": "2026-02-03T10:00:00+01:00"}),
        ),
    ] {
        assert_eq!(
            build_body(&specs, &obj(given.clone())).ok(),
            Some(sent),
            "{given}"
        );
    }
    for year in ["0000-01-01", "10000-01-01", "-0001-01-01"] {
        let e = build_body(&specs, &obj(json!({"d": year}))).unwrap_err();
        assert_eq!(
            e.message,
            format!("parameter 'd' must be a date (YYYY-MM-DD), got the string \"{year}\"")
        );
    }
}

#[test]
fn unknown_parameters_and_long_strings_are_refused() {
    let specs = [spec("a", ParameterType::String, false)];
    assert_eq!(
        build_body(&specs, &obj(json!({"zz":1}))).unwrap_err().code,
        ExecutionErrorCode::UnknownParameter
    );
    let e = build_body(&specs, &obj(json!({"a":"01234567890"}))).unwrap_err();
    assert!(e.message.contains("at most 10"), "{}", e.message);
}

#[test]
fn path_values_are_one_encoded_segment() {
    let mut table = spec("table", ParameterType::String, true);
    table.location = ParameterLocation::Path;
    table.max_length = None;
    let built = build(&[table], &obj(json!({"table": "../sys_user/x y"}))).expect("valid");
    assert_eq!(
        render_path("/api/now/table/{table}", &built.path),
        "/api/now/table/..%2Fsys_user%2Fx%20y"
    );
    let only_dots = BTreeMap::from([("t".to_string(), "..".to_string())]);
    assert_eq!(render_path("/a/{t}", &only_dots), "/a/%2E%2E");
}

#[test]
fn plain_text_becomes_adf_and_ids_are_wrapped() {
    let mut desc = spec("d", ParameterType::String, true);
    desc.transform = Some(Transform::Adf);
    desc.max_length = None;
    let mut project = spec("p", ParameterType::String, true);
    project.transform = Some(Transform::KeyObject);
    project.target = "fields.project".into();
    let mut labels = spec("l", ParameterType::StringList, false);
    labels.max_length = None;
    let body = build_body(
        &[desc, project, labels],
        &obj(json!({"d": "one\n\ntwo", "p": "ENG", "l": "a, b"})),
    )
    .expect("valid");
    assert_eq!(
        body["d"],
        json!({"type":"doc","version":1,"content":[
        {"type":"paragraph","content":[{"type":"text","text":"one"}]},
        {"type":"paragraph","content":[{"type":"text","text":"two"}]}]})
    );
    assert_eq!(body["fields"]["project"], json!({"key": "ENG"}));
    assert_eq!(body["l"], json!(["a", "b"]));
}

#[test]
fn json_parameters_accept_structures_or_their_text() {
    let mut blocks = spec("blocks", ParameterType::Json, false);
    blocks.max_length = None;
    let specs = [blocks];
    assert_eq!(
        build_body(&specs, &obj(json!({"blocks": "[{\"type\":\"divider\"}]"}))).expect("ok")["blocks"]
            [0]["type"],
        "divider"
    );
    assert!(build_body(&specs, &obj(json!({"blocks": "not json"}))).is_err());
}

#[test]
fn emails_are_checked() {
    let specs = [ParameterSpec {
        max_length: None,
        ..spec("e", ParameterType::Email, true)
    }];
    for good in [
        "a@b.io",
        "jane.o'neil+crm@mail.acme-corp.co.uk",
        "zoë@münchen.de",
    ] {
        assert!(
            build_body(&specs, &obj(json!({ "e": good }))).is_ok(),
            "{good}"
        );
    }
    let long_local = format!("{}@b.io", "a".repeat(65));
    let long = format!("a@{}.io", "b".repeat(250));
    for bad in [
        "a@b",
        "ab.io",
        "a @b.io",
        "@b.io",
        "a@b..io",
        "a@.b.io",
        "a@b.io.",
        "a@-b.io",
        "a@b-.io",
        "a@b_c.io",
        "a@b.io/x",
        "a..b@c.io",
        ".a@c.io",
        "a@b@c.io",
        "\"a\"@c.io",
        "a\u{7}@c.io",
        &long_local,
        &long,
    ] {
        assert!(build_body(&specs, &obj(json!({"e":bad}))).is_err(), "{bad}");
    }
}

#[test]
fn a_whole_number_written_with_a_fraction_is_an_integer() {
    let specs = [spec("n", ParameterType::Integer, true)];
    for (sent, sends) in [
        (json!(5.0), json!(5)),
        (json!(-12.0), json!(-12)),
        (json!(1e3), json!(1000)),
        (json!("7.0"), json!(7)),
        (json!(" 42 "), json!(42)),
        (json!(9007199254740992.0), json!(9007199254740992_i64)),
        (json!(u64::MAX), json!(u64::MAX)),
    ] {
        let body = build_body(&specs, &obj(json!({ "n": sent }))).expect("whole");
        assert_eq!(body["n"], sends, "{sent}");
        assert!(body["n"].is_i64() || body["n"].is_u64(), "{sent}");
    }
    for bad in [
        json!(5.5),
        json!("5.5"),
        json!(1e300),
        json!(18014398509481984.0),
        json!("NaN"),
        json!("inf"),
        json!("five"),
    ] {
        let e = build_body(&specs, &obj(json!({ "n": bad }))).unwrap_err();
        assert_eq!(
            (e.parameter.as_str(), e.code),
            ("n", ExecutionErrorCode::InvalidParameter)
        );
        assert!(e.message.contains("a whole number"), "{bad}: {}", e.message);
    }
}

#[test]
fn a_number_beyond_its_bounds_is_refused_naming_the_bound() {
    let employees = ParameterSpec {
        minimum: Some(0.into()),
        maximum: Some(99_999_999.into()),
        ..spec("employees", ParameterType::Integer, true)
    };
    let ratio = ParameterSpec {
        minimum: Some(Number::from_f64(0.5).expect("finite")),
        maximum: Some(1.into()),
        ..spec("ratio", ParameterType::Number, false)
    };
    let specs = [employees, ratio];
    let refused = |values: Value| {
        build_body(&specs, &obj(values))
            .map(|_| ())
            .map_err(|e| (e.code, e.parameter, e.message))
    };
    // The bounds themselves, and a numeric string converted, are within.
    assert_eq!(refused(json!({"employees": 0, "ratio": 0.5})), Ok(()));
    assert_eq!(
        refused(json!({"employees": "99999999", "ratio": 1})),
        Ok(())
    );
    for (values, parameter, message) in [
        (
            json!({"employees": 100_000_000}),
            "employees",
            "parameter 'employees' must be at most 99999999, got the number 100000000",
        ),
        (
            json!({"employees": 9_223_372_036_854_775_808u64}),
            "employees",
            "parameter 'employees' must be at most 99999999, got the number 9223372036854775808",
        ),
        (
            json!({"employees": "-1"}),
            "employees",
            "parameter 'employees' must be at least 0, got the number -1",
        ),
        (
            json!({"employees": 1, "ratio": 0.25}),
            "ratio",
            "parameter 'ratio' must be at least 0.5, got the number 0.25",
        ),
        (
            json!({"employees": 1, "ratio": 1.0000001}),
            "ratio",
            "parameter 'ratio' must be at most 1, got the number 1.0000001",
        ),
    ] {
        let expected = (
            ExecutionErrorCode::InvalidParameter,
            parameter.to_string(),
            message.to_string(),
        );
        assert_eq!(refused(values), Err(expected));
    }
}

#[test]
fn a_value_outside_the_allowed_ones_is_refused_listing_them() {
    let urgency = ParameterSpec {
        allowed_values: vec!["1".into(), "2".into(), "3".into()],
        ..spec("urgency", ParameterType::String, false)
    };
    let labels = ParameterSpec {
        max_length: None,
        allowed_values: (1..=12).map(|i| format!("l{i}")).collect(),
        ..spec("labels", ParameterType::StringList, false)
    };
    let specs = [urgency, labels];
    let body = build_body(&specs, &obj(json!({"urgency": 2, "labels": "l1, l12"})));
    assert_eq!(
        body.expect("allowed"),
        json!({"urgency": "2", "labels": ["l1", "l12"]}),
        "a number converted to its text, each item of a list, are checked as given"
    );
    let e = build_body(&specs, &obj(json!({"urgency": "high"}))).unwrap_err();
    assert_eq!(
        (e.code, e.parameter.as_str(), e.message.as_str()),
        (
            ExecutionErrorCode::InvalidParameter,
            "urgency",
            "parameter 'urgency' must be one of '1', '2', '3', got the string \"high\""
        )
    );
    let e = build_body(&specs, &obj(json!({"labels": ["l3", "L3"]}))).unwrap_err();
    assert_eq!(
        (e.parameter.as_str(), e.message.as_str()),
        (
            "labels",
            "each item of parameter 'labels' must be one of 'l1', 'l2', 'l3', 'l4', 'l5', 'l6', \
             'l7', 'l8', 'l9', 'l10', … (12 in all), got the string \"L3\""
        )
    );
}

//! The API described: `GET /openapi.json` of a real daemon names every route of the router
//! it serves, with every method each answers, and nothing else.

mod daemon_common;

use daemon_common::*;
use std::collections::BTreeSet;

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "DELETE", "PATCH"];

#[test]
fn the_document_names_every_route_and_method() {
    let dir = tempfile::tempdir().unwrap();
    copy_welcome(dir.path());
    let d = Daemon::start(dir.path());

    // No token needed: the document holds no data.
    let (status, doc) = d.call("GET", "/openapi.json", None, None);
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
    let paths = doc["paths"].as_object().expect("paths");

    // The paths of the router the daemon serves, read from the router itself.
    let routed: BTreeSet<String> = journey::server::openapi::router_paths()
        .into_iter()
        .collect();
    assert!(
        routed.len() > 30,
        "the router's paths were not read: {routed:?}"
    );
    let documented: BTreeSet<String> = paths.keys().cloned().collect();
    assert_eq!(
        routed.difference(&documented).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "routes the document does not name"
    );
    assert_eq!(
        documented.difference(&routed).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "documented paths the router does not have"
    );

    // Each path, with every method: a documented one reaches its handler, any other is the
    // router's 405.
    for (path, item) in paths {
        let concrete = concrete(path);
        for method in METHODS {
            let listed = item.get(method.to_ascii_lowercase()).is_some();
            let (status, body) = d.call(method, &concrete, None, None);
            if listed {
                assert_ne!(
                    status, 405,
                    "{method} {path} is documented but not routed: {body}"
                );
                let op = &item[method.to_ascii_lowercase()];
                assert!(op["responses"].is_object(), "{method} {path}: no responses");
                assert!(
                    op["responses"]["4XX"].is_object(),
                    "{method} {path}: the error shape is not documented"
                );
            } else {
                assert_eq!(
                    status, 405,
                    "{method} {path} answers but is not documented: {body}"
                );
                assert_eq!(body["code"], "method_not_allowed", "{method} {path}");
            }
        }
    }

    // Authenticated operations say so.
    let op = &doc["paths"]["/v1/events"]["post"];
    assert!(op["security"].is_array(), "{op}");
    assert!(doc["paths"]["/healthz"]["get"]["security"].is_null());
}

/// A documented path with its parameters filled in.
fn concrete(path: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => in_param = true,
            '}' => {
                in_param = false;
                out.push_str("nobody");
            }
            _ if in_param => {}
            _ => out.push(c),
        }
    }
    out
}

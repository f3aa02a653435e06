//! The served OpenAPI document.

use serde_json::Value;

use crate::helpers::TestApp;

/// The schema a `$ref` points at, or the value itself.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => {
            let name = r.rsplit('/').next().unwrap();
            &doc["components"]["schemas"][name]
        }
        None => schema,
    }
}

/// Every property name of a schema, through `allOf` and `$ref`.
fn property_names(doc: &Value, schema: &Value) -> Vec<String> {
    let schema = resolve(doc, schema);
    let mut names: Vec<String> = schema["properties"]
        .as_object()
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default();
    for part in schema["allOf"].as_array().into_iter().flatten() {
        names.extend(property_names(doc, part));
    }
    names
}

/// Every `$ref` anywhere in `value`.
fn collect_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                out.push(r.clone());
            }
            map.values().for_each(|v| collect_refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

#[actix_rt::test]
async fn the_document_describes_the_api_without_leaking_secrets() {
    let app = TestApp::spawn_default().await;
    let resp = app.get("/api/v1/openapi.json", None).await;
    assert_eq!(resp.status, 200);
    let doc = resp.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with('3'));
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"].as_str(),
        Some("bearer")
    );
    for path in [
        "/healthz",
        "/api/v1/openapi.json",
        "/api/v1/auth/login",
        "/api/v1/auth/logout",
        "/api/v1/webhooks/",
        "/api/v1/webhooks/{uuid}",
        "/api/v1/webhooks/{uuid}/test",
        "/api/v1/webhooks/{uuid}/rotate-secret",
        "/api/v1/webhooks/{uuid}/dead-letters",
        "/api/v1/webhooks/{uuid}/replay",
        "/api/v1/webhooks/{uuid}/deliveries",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} is not documented");
    }

    let schemas = &doc["components"]["schemas"];
    let webhook = property_names(&doc, &schemas["Webhook"]);
    for field in [
        "uuid",
        "name",
        "url",
        "topic_patterns",
        "enabled",
        "warnings",
        "auto_disabled_at",
    ] {
        assert!(webhook.contains(&field.to_owned()), "Webhook lacks {field}");
    }
    assert!(
        !webhook.contains(&"secret".to_owned()),
        "Webhook has a secret"
    );
    // Only the rotation timestamps mention secrets, and they are timestamps.
    for field in webhook.iter().filter(|f| f.contains("secret")) {
        assert!(
            ["secret_rotated_at", "previous_secret_expires_at"].contains(&field.as_str()),
            "Webhook has {field}"
        );
        let property = schemas["Webhook"]["properties"][field].to_string();
        assert!(property.contains("date-time"), "{field}: {property}");
    }
    let created = property_names(&doc, &schemas["WebhookCreated"]);
    assert!(created.contains(&"secret".to_owned()));
    assert!(created.contains(&"uuid".to_owned()));

    // GET answers are Webhooks, not WebhookCreated.
    let get = &doc["paths"]["/api/v1/webhooks/{uuid}"]["get"]["responses"]["200"];
    let schema = &get["content"]["application/json"]["schema"];
    assert_eq!(
        schema["$ref"].as_str(),
        Some("#/components/schemas/Webhook")
    );
    for name in [
        "WebhookCreate",
        "WebhookUpdate",
        "RotateSecret",
        "ErrorBody",
        "TestResult",
        "DeadLetterPage",
        "DeadLetter",
        "ReplayResult",
        "DeliveryPage",
        "DeliveryAttempt",
    ] {
        assert!(schemas.get(name).is_some(), "{name} schema missing");
    }
    for name in ["DeadLetter", "ReplayResult", "DeliveryAttempt"] {
        assert!(!schemas[name].to_string().contains("secret"), "{name}");
    }

    // Login documents its refusals and when to come back; logout needs a token.
    let login = &doc["paths"]["/api/v1/auth/login"]["post"]["responses"];
    for status in ["429", "503"] {
        assert!(
            login[status]["headers"].get("Retry-After").is_some(),
            "login {status} without Retry-After: {}",
            login[status]
        );
    }
    let logout = &doc["paths"]["/api/v1/auth/logout"]["post"];
    assert!(logout["security"].is_array(), "{logout}");
    assert!(logout["responses"].get("204").is_some(), "{logout}");

    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    for r in refs {
        let name = r
            .strip_prefix("#/components/schemas/")
            .expect("a schema $ref");
        assert!(schemas.get(name).is_some(), "{r} points nowhere");
    }

    // Paging parameters are documented with their bounds.
    let params = &doc["paths"]["/api/v1/webhooks/{uuid}/dead-letters"]["get"]["parameters"];
    let limit = params
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .expect("limit documented");
    assert_eq!(limit["in"], "query");
    assert_eq!(limit["required"], false);
    assert_eq!(limit["schema"]["maximum"], 500);
}

/// Every documented path answers a method it does not serve with 405 and an `Allow`
/// header naming exactly the documented methods (RFC 9110; found by schemathesis,
/// which saw 405s without `Allow` and a 404 for `TRACE /healthz`).
#[actix_rt::test]
async fn undocumented_methods_are_405_with_allow() {
    let app = TestApp::spawn_default().await;
    let token = app.admin_token().await;
    let doc = app.get("/api/v1/openapi.json", None).await.json();
    let uuid = "00000000-0000-4000-8000-000000000000";
    for (template, item) in doc["paths"].as_object().expect("paths") {
        let mut documented: Vec<String> = item
            .as_object()
            .expect("path item")
            .keys()
            .map(|m| m.to_ascii_uppercase())
            .collect();
        documented.sort();
        let path = template.replace("{uuid}", uuid);
        for method in [reqwest::Method::TRACE, reqwest::Method::PUT] {
            let resp = app.send(method.clone(), &path, Some(&token), None).await;
            assert_eq!(resp.status, 405, "{method} {path}: {}", resp.text);
            assert!(!resp.detail().is_empty(), "{method} {path}");
            let allow = resp
                .headers
                .get("allow")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_else(|| panic!("{method} {path}: no Allow header"));
            let mut allowed: Vec<String> = allow.split(',').map(|m| m.trim().to_owned()).collect();
            allowed.sort();
            assert_eq!(allowed, documented, "{method} {path}");
        }
    }
}

#[actix_rt::test]
async fn answers_given_before_a_handler_are_documented() {
    let app = TestApp::spawn_default().await;
    let doc = app.get("/api/v1/openapi.json", None).await.json();
    let responses = |path: &str, method: &str| -> Vec<String> {
        doc["paths"][path][method]["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{method} {path} is not documented"))
            .keys()
            .cloned()
            .collect()
    };
    // A route with a body: the Host check, the media type and the body deadline.
    let create = responses("/api/v1/webhooks/", "post");
    for status in ["408", "415", "421"] {
        assert!(create.contains(&status.to_owned()), "{status}: {create:?}");
    }
    // Without a body: only the Host check.
    let list = responses("/api/v1/webhooks/", "get");
    assert!(list.contains(&"421".to_owned()), "{list:?}");
    assert!(!list.contains(&"415".to_owned()), "{list:?}");
    // A probe may use any Host.
    let health = responses("/healthz", "get");
    assert!(!health.contains(&"421".to_owned()), "{health:?}");
    let error = &doc["paths"]["/api/v1/webhooks/"]["post"]["responses"]["415"]["content"]
        ["application/json"]["schema"]["$ref"];
    assert_eq!(error.as_str(), Some("#/components/schemas/ErrorBody"));
}

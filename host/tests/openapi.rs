//! docs/openapi.yaml describes exactly the routes the server serves.

use std::collections::BTreeSet;

#[test]
fn openapi_lists_exactly_the_api_routes() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.yaml"))
            .unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let methods = ["get", "put", "post", "delete", "patch"];
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_mapping().unwrap() {
        for m in methods {
            if item.get(m).is_some() {
                documented.insert((m.to_string(), path.as_str().unwrap().to_string()));
            }
        }
    }
    let served: BTreeSet<_> = rill::http::API_ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(
        documented, served,
        "docs/openapi.yaml and rill::http::API_ROUTES differ"
    );
}

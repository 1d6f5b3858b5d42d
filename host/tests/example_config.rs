//! packaging/rill.yaml lists every key with its default: it parses, it holds
//! the defaults (but for the packaged paths and the sample plugin section),
//! and no key of the code is missing from it.

use rill::config::Config;

fn leaf_paths(v: &serde_yaml::Value, prefix: &str, out: &mut Vec<String>) {
    match v {
        serde_yaml::Value::Mapping(m) => {
            for (k, v) in m {
                let k = k.as_str().unwrap_or_default();
                let p = if prefix.is_empty() {
                    k.to_string()
                } else {
                    format!("{prefix}.{k}")
                };
                if p == "plugins" {
                    out.push(p);
                    continue;
                }
                leaf_paths(v, &p, out);
            }
        }
        _ => out.push(prefix.to_string()),
    }
}

#[test]
fn example_config_is_complete_and_holds_the_defaults() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../packaging/rill.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    let example = Config::from_yaml_str(&text).unwrap_or_else(|e| panic!("{path}:\n{e}"));
    let expected = Config {
        plugins_dir: "/usr/lib/rill/plugins".into(),
        state_dir: "/var/lib/rill".into(),
        plugins: example.plugins.clone(),
        ..Default::default()
    };
    assert_eq!(
        example, expected,
        "packaging/rill.yaml no longer shows the defaults"
    );

    let mut in_code = Vec::new();
    leaf_paths(
        &serde_yaml::to_value(Config::default()).unwrap(),
        "",
        &mut in_code,
    );
    let mut in_example = Vec::new();
    leaf_paths(&serde_yaml::from_str(&text).unwrap(), "", &mut in_example);
    for k in &in_code {
        assert!(
            in_example.contains(k),
            "packaging/rill.yaml lacks the key {k}"
        );
    }
}

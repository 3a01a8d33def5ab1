//! Property test: any configuration text and any `QUIVER_...` environment
//! either loads into a valid configuration or is refused with a message
//! naming where the problem is, never a panic.

use std::io::Write;

use proptest::prelude::*;
use quiver_config::{ConfigSource, load_from};

const EXAMPLE: &str = include_str!("../../../config.example.toml");

/// Values of every TOML type, fitting and not.
const VALUES: &[&str] = &[
    "0",
    "-1",
    "1",
    "65535",
    "65536",
    "99999999999999999999",
    "1.5",
    "nan",
    "inf",
    "true",
    "\"\"",
    "\"x\"",
    "\"node-1\"",
    "\"../../etc\"",
    "\"\\u0000\"",
    "[]",
    "[1, 2]",
    "{ a = 1 }",
    "1979-05-27T07:32:00Z",
    "\"debug\"",
    "\"json\"",
    "\"rows:5\"",
];

const SECTIONS: &[&str] = &[
    "server",
    "storage",
    "auth",
    "limits",
    "flush",
    "compaction",
    "websocket",
    "logging",
    "datafusion",
    "nope",
];

/// The largest char boundary of `text` at or before `i`.
fn boundary(text: &str, i: usize) -> usize {
    (0..=i.min(text.len()))
        .rev()
        .find(|&j| text.is_char_boundary(j))
        .unwrap_or(0)
}

/// The example file with one line's value replaced, a range cut out, or
/// a value spliced in.
fn mutated_example() -> impl Strategy<Value = String> {
    (
        0..3u8,
        any::<prop::sample::Index>(),
        any::<prop::sample::Index>(),
        prop::sample::select(VALUES),
    )
        .prop_map(|(kind, a, b, value)| match kind {
            0 => {
                let mut lines: Vec<String> = EXAMPLE.lines().map(str::to_string).collect();
                let i = a.index(lines.len());
                lines[i] = match lines[i].split_once('=') {
                    Some((key, _)) => format!("{key}= {value}"),
                    None => format!("{}{value}", lines[i]),
                };
                lines.join("\n")
            }
            1 => {
                let (x, y) = (a.index(EXAMPLE.len()), b.index(EXAMPLE.len()));
                let (from, to) = (boundary(EXAMPLE, x.min(y)), boundary(EXAMPLE, x.max(y)));
                format!("{}{}", &EXAMPLE[..from], &EXAMPLE[to..])
            }
            _ => {
                let at = boundary(EXAMPLE, a.index(EXAMPLE.len()));
                format!("{}{value}{}", &EXAMPLE[..at], &EXAMPLE[at..])
            }
        })
}

/// Sections of known and unknown keys with values of any type.
fn key_values() -> impl Strategy<Value = String> {
    let line = (
        prop::sample::select(SECTIONS),
        "[a-z_]{1,24}",
        prop::sample::select(VALUES),
    );
    prop::collection::vec(line, 0..12).prop_map(|lines| {
        lines
            .into_iter()
            .map(|(section, key, value)| format!("[{section}]\n{key} = {value}\n"))
            .collect()
    })
}

/// Up to four `QUIVER_<SECTION>__<KEY>` variables, known keys or not.
fn environment() -> impl Strategy<Value = Vec<(String, String)>> {
    let var = (
        prop::sample::select(SECTIONS),
        prop_oneof![
            Just("port".to_string()),
            Just("node_id".to_string()),
            Just("level".to_string()),
            Just("max_body_bytes".to_string()),
            "[a-z_]{1,12}",
        ],
        prop_oneof![
            prop::sample::select(VALUES).prop_map(str::to_string),
            ".{0,12}"
        ],
    );
    prop::collection::vec(var, 0..4).prop_map(|vars| {
        vars.into_iter()
            .map(|(section, key, value)| {
                let name = format!("QUIVER_{}__{}", section.to_uppercase(), key.to_uppercase());
                (name, value)
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 1500,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn any_config_loads_or_is_refused_with_a_located_message(
        text in prop_oneof![mutated_example(), key_values(), ".{0,200}"],
        env in environment(),
    ) {
        let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        file.write_all(text.as_bytes()).unwrap();
        let path = file.path().to_path_buf();
        match load_from(&ConfigSource::File(path.clone()), env.clone()) {
            Ok(config) => {
                // A loaded configuration lists its settings and loads the
                // same way again.
                prop_assert!(!config.settings().is_empty());
                let again = load_from(&ConfigSource::File(path), env).unwrap();
                prop_assert_eq!(again.settings(), config.settings());
            }
            Err(error) => {
                // The message names the file, the variable or the key.
                let message = error.to_string();
                let located = message.contains(&path.display().to_string())
                    || env.iter().any(|(var, _)| message.contains(var.as_str()))
                    || message.contains('`');
                prop_assert!(located, "{}", message);
            }
        }
    }
}

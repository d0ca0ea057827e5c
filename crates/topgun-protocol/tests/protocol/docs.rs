//! docs/protocol.md cannot drift: every fenced `json` block in it must be
//! one message that decodes, and every message must have an example.

use std::path::PathBuf;

use topgun_protocol::*;

use crate::samples::{client_index, server_index};

fn protocol_md() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/protocol.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The contents of every fenced block whose info string is exactly `json`,
/// with the line it starts on.
fn json_blocks(md: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, line) in md.lines().enumerate() {
        let trimmed = line.trim();
        match &mut current {
            None if trimmed == "```json" => current = Some((i + 1, String::new())),
            None => {}
            Some(_) if trimmed == "```" => blocks.extend(current.take()),
            Some((_, text)) => {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    assert!(current.is_none(), "unterminated ```json block");
    blocks
}

#[test]
fn every_json_example_decodes_and_every_message_has_one() {
    let md = protocol_md();
    let json = Codec::new(Encoding::Json);
    let bin = Codec::new(Encoding::Bincode);
    let mut client_seen = vec![false; ClientMessage::NAMES.len()];
    let mut server_seen = vec![false; ServerMessage::NAMES.len()];
    let mut failures = Vec::new();
    let blocks = json_blocks(&md);
    assert!(!blocks.is_empty(), "no ```json blocks in docs/protocol.md");
    for (line, text) in &blocks {
        let as_client = json.decode_client(text.as_bytes());
        let as_server = json.decode_server(text.as_bytes());
        if let Ok(m) = &as_client {
            client_seen[client_index(m)] = true;
            // The example also survives the binary encoding.
            assert_eq!(&bin.decode_client(&bin.encode(m).unwrap()).unwrap(), m);
        }
        if let Ok(m) = &as_server {
            server_seen[server_index(m)] = true;
            assert_eq!(&bin.decode_server(&bin.encode(m).unwrap()).unwrap(), m);
        }
        if let (Err(c), Err(s)) = (as_client, as_server) {
            failures.push(format!(
                "docs/protocol.md:{line}: not a message\n  as client: {c}\n  as server: {s}"
            ));
        }
    }
    for (i, seen) in client_seen.iter().enumerate() {
        if !seen {
            failures.push(format!(
                "no example of client message {}",
                ClientMessage::NAMES[i]
            ));
        }
    }
    for (i, seen) in server_seen.iter().enumerate() {
        if !seen {
            failures.push(format!(
                "no example of server message {}",
                ServerMessage::NAMES[i]
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// The code and message tables in the docs list every code and message with
/// its bincode index, so a reader can map a variant index to its name. Each table sits under a
/// heading that names the enum; its rows look like `| 3 | `Forbidden` | ... |`.
#[test]
fn code_tables_list_every_code_with_its_index() {
    let md = protocol_md();
    let json = Codec::new(Encoding::Json);
    let bin = Codec::new(Encoding::Bincode);
    // (enum, number of codes, JSON frame carrying code `{}`, bincode bytes
    // before the code's index in that frame's encoding).
    let tables: [(&str, usize, &str, &[u8]); 3] = [
        (
            "ErrorCode",
            11,
            r#"{"ERROR":{"code":"{}","message":""}}"#,
            &[12],
        ),
        (
            "RejectCode",
            10,
            r#"{"OP_REJECTED":{"rejections":[{"op_id":0,"code":"{}","message":""}]}}"#,
            &[4, 1, 0],
        ),
        (
            "AuthFailReason",
            10,
            r#"{"AUTH_FAIL":{"reason":"{}","message":""}}"#,
            &[2],
        ),
    ];
    let names: Vec<&str> = tables
        .iter()
        .map(|t| t.0)
        .chain(["ClientMessage", "ServerMessage"])
        .collect();
    let mut rows: Vec<Vec<(u8, String)>> = vec![Vec::new(); names.len()];
    let mut current: Option<usize> = None;
    for line in md.lines() {
        if line.starts_with('#') {
            current = names.iter().position(|name| line.contains(name));
            continue;
        }
        let Some(t) = current else { continue };
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 4 || cells[1].is_empty() || !cells[1].chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let Some(name) = cells[2].strip_prefix('`').and_then(|c| c.strip_suffix('`')) else {
            continue;
        };
        rows[t].push((cells[1].parse().unwrap(), name.to_owned()));
    }
    let mut failures = Vec::new();
    for ((enum_name, count, frame, prefix), rows) in tables.iter().zip(&rows[..3]) {
        if rows.len() != *count {
            failures.push(format!(
                "{enum_name}: {} rows, expected {count}",
                rows.len()
            ));
        }
        for (i, (index, name)) in rows.iter().enumerate() {
            if usize::from(*index) != i {
                failures.push(format!("{enum_name}: row {i} has index {index}"));
            }
            let text = frame.replace("{}", name);
            match json.decode_server(text.as_bytes()) {
                Ok(m) => {
                    let bytes = bin.encode(&m).unwrap();
                    if bytes[prefix.len()] != *index {
                        failures.push(format!(
                            "{enum_name}::{name} is documented as {index}, encodes as {}",
                            bytes[prefix.len()]
                        ));
                    }
                }
                Err(e) => failures.push(format!("{enum_name}::{name}: {e}")),
            }
        }
    }
    // The message tables: index = position in `Message::NAMES`, which the
    // samples test ties to the bincode tag.
    for (enum_name, all, rows) in [
        ("ClientMessage", ClientMessage::NAMES, &rows[3]),
        ("ServerMessage", ServerMessage::NAMES, &rows[4]),
    ] {
        let listed: Vec<&str> = rows.iter().map(|(_, n)| n.as_str()).collect();
        if listed != all {
            failures.push(format!(
                "{enum_name} table lists {listed:?}, expected {all:?}"
            ));
        }
        for (i, (index, name)) in rows.iter().enumerate() {
            if usize::from(*index) != i {
                failures.push(format!(
                    "{enum_name}: `{name}` has index {index}, expected {i}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

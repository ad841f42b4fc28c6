//! Printing: JSON documents for scripts, aligned tables for people, failures on stderr.

use serde::Serialize;

use crate::exit::Failure;

/// `value` as one pretty JSON document on stdout.
pub fn json(value: &impl Serialize) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        // Only plain data structures are serialised; this cannot happen, and if it did a
        // script must see a failure rather than nothing.
        Err(e) => eprintln!("identity-cache: cannot write JSON: {e}"),
    }
}

/// A failure: with `--json`, `{"error": {...}}` on stdout (scripts read one document);
/// always the message on stderr.
pub fn failure(failure: &Failure, as_json: bool) {
    if as_json {
        json(&serde_json::json!({
            "error": {
                "exit_code": failure.code.value(),
                "cause": failure.code,
                "message": failure.message,
            }
        }));
    }
    eprintln!("identity-cache: {}", failure.message);
}

/// Rows under headers, columns padded to their widest cell, two spaces apart.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        padded.join("  ").trim_end().to_owned()
    };
    let mut out = vec![line(headers.to_vec())];
    out.extend(
        rows.iter()
            .map(|row| line(row.iter().map(String::as_str).collect())),
    );
    out.join("\n")
}

/// A byte count for people: `812 B`, `3.4 KiB`, `1.2 MiB`.
pub fn size(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let b = bytes as f64;
    if bytes < 1024 {
        format!("{bytes} B")
    } else if b < KIB * KIB {
        format!("{:.1} KiB", b / KIB)
    } else {
        format!("{:.1} MiB", b / (KIB * KIB))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_trim() {
        let rows = vec![
            vec!["a".to_owned(), "long cell".to_owned(), String::new()],
            vec!["bbb".to_owned(), "x".to_owned(), "y".to_owned()],
        ];
        assert_eq!(
            table(&["N", "WHAT", "Z"], &rows),
            "N    WHAT       Z\na    long cell\nbbb  x          y"
        );
    }

    #[test]
    fn sizes_read_naturally() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(3482), "3.4 KiB");
        assert_eq!(size(5 * 1024 * 1024), "5.0 MiB");
    }
}

//! Reading newline-terminated lines with a length bound, shared by both sides.

use std::io::{self, BufRead};

/// One read from a line stream.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum LineRead {
    /// A whole line, without its `\n` (and without a `\r` before it).
    Line(Vec<u8>),
    /// The stream ended; `partial` holds bytes after the last newline, if any.
    Eof { partial: Vec<u8> },
    /// The line exceeded the bound; `prefix` is its beginning. The rest of the line has been
    /// consumed, so the next read starts at the next line.
    TooLong { prefix: Vec<u8> },
}

/// Reads the next line, keeping at most `max` bytes of it in memory.
pub(crate) fn read_line(input: &mut impl BufRead, max: usize) -> io::Result<LineRead> {
    let mut line = Vec::new();
    let mut too_long = false;
    loop {
        let available = match input.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(if too_long {
                LineRead::TooLong { prefix: line }
            } else {
                LineRead::Eof { partial: line }
            });
        }
        let (chunk, found_newline) = match available.iter().position(|&b| b == b'\n') {
            Some(at) => (&available[..at], true),
            None => (available, false),
        };
        let used = chunk.len() + usize::from(found_newline);
        if !too_long {
            if line.len() + chunk.len() > max {
                // Keep a prefix for the error message, drop the rest as it streams by.
                let room = max.saturating_sub(line.len()).min(1024);
                line.extend_from_slice(&chunk[..room]);
                too_long = true;
            } else {
                line.extend_from_slice(chunk);
            }
        }
        input.consume(used);
        if found_newline {
            if too_long {
                return Ok(LineRead::TooLong { prefix: line });
            }
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(LineRead::Line(line));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lines_and_bounds_them() {
        let mut input = io::Cursor::new(b"ab\r\n0123456789\ncd\nef".to_vec());
        assert_eq!(
            read_line(&mut input, 5).ok(),
            Some(LineRead::Line(b"ab".to_vec()))
        );
        assert!(matches!(
            read_line(&mut input, 5),
            Ok(LineRead::TooLong { .. })
        ));
        assert_eq!(
            read_line(&mut input, 5).ok(),
            Some(LineRead::Line(b"cd".to_vec()))
        );
        assert_eq!(
            read_line(&mut input, 5).ok(),
            Some(LineRead::Eof {
                partial: b"ef".to_vec()
            })
        );
    }
}

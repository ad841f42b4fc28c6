//! The table both catalogue tests print after their run: one row per broken plugin, the
//! case that must catch it, and whether it did.

/// One broken plugin's line.
pub struct TableRow<'a> {
    pub plugin: &'a str,
    /// The case (or cases) that must fail for it.
    pub expected: &'a str,
    pub caught: bool,
    pub seconds: f64,
    /// The rule it breaks.
    pub rule: &'a str,
}

/// Prints `title`, a header and `rows` in their order; returns how many were caught.
pub fn print(title: &str, rows: &[TableRow<'_>]) -> usize {
    let width = |f: fn(&TableRow<'_>) -> usize| rows.iter().map(f).max().unwrap_or(0);
    let wp = width(|r| r.plugin.len()).max(6);
    let we = width(|r| r.expected.len()).max(20);
    println!();
    println!("{title}");
    println!(
        "{:<wp$}  {:<we$}  {:<10}  {:>6}  rule",
        "plugin", "expected failing case", "caught", "time"
    );
    println!("{}", "-".repeat(wp + we + 30));
    for r in rows {
        println!(
            "{:<wp$}  {:<we$}  {:<10}  {:>5.1}s  {}",
            r.plugin,
            r.expected,
            if r.caught { "caught" } else { "NOT CAUGHT" },
            r.seconds,
            r.rule
        );
    }
    rows.iter().filter(|r| r.caught).count()
}

//! Reading the operator binary's text log (`--log-format text`), which may carry ANSI
//! styling (field names in italics, levels coloured on a terminal).

/// `text` without its `ESC [ ... letter` sequences.
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `HOST:PORT` where the operator serves /metrics, /healthz and /readyz, from its startup
/// line (`serving /metrics, ... addr=HOST:PORT`); `None` before it logged it.
pub fn metrics_addr(log: &str) -> Option<String> {
    let log = strip_ansi(log);
    let line = log.lines().find(|l| l.contains("serving /metrics"))?;
    line.split_whitespace().find_map(|w| w.strip_prefix("addr=")).map(str::to_string)
}

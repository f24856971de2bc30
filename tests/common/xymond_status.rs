//! Parsing what xymond answers: a `xymondlog HOST.TEST` reply ([`StatusLog`]), a `ghostlist` entry
//! ([`Ghost`]), xymond's `nlencode` escapes, and the comma form of host names it expects. Used by
//! `xymond.rs` and by the tests that assert on delivered statuses.

/// One parsed `xymondlog HOST.TEST` reply: the 15 default header fields of
/// xymond 4.3.30 and the raw status text. The header is
/// `hostname|testname|color|flags|lastchange|logtime|validtime|acktime|disabletime|sender|cookie|
/// ackmsg|dismsg|client|modifiers`, then a newline and the status text (docs/xymon-protocol.md,
/// 'xymondlog').
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusLog {
    /// Host name as spelled in hosts.cfg (with dots).
    pub hostname: String,
    /// Test (column) name.
    pub testname: String,
    /// Current colour word, e.g. `green`.
    pub color: String,
    /// Test flags (from `<!-- [flags:...] -->`), usually empty.
    pub flags: String,
    /// Unix time of the last colour change.
    pub lastchange: i64,
    /// Unix time the status was last received.
    pub logtime: i64,
    /// Unix time after which the status turns purple.
    pub validtime: i64,
    /// Unix time the acknowledgement ends, 0 when none.
    pub acktime: i64,
    /// Unix time the disable ends, 0 when none.
    pub disabletime: i64,
    /// Sender IP address.
    pub sender: String,
    /// Alert cookie, usually empty.
    pub cookie: String,
    /// Acknowledgement text (decoded from xymond's `nlencode`).
    pub ackmsg: String,
    /// Disable text (decoded).
    pub dismsg: String,
    /// `Y`/`N`: whether client data exists for the host.
    pub client: String,
    /// Active modifiers (decoded), e.g. `&red cause\n`.
    pub modifiers: String,
    /// The status text as xymond returns it: starts at the colour word, no
    /// trailing newline added.
    pub body: String,
}

impl StatusLog {
    /// Parses a raw `xymondlog` reply; `None` for the empty reply of an unknown
    /// host or test (or a header that does not have 15 fields).
    pub fn parse(reply: &str) -> Option<StatusLog> {
        let (header, body) = reply.split_once('\n').unwrap_or((reply, ""));
        let f: Vec<&str> = header.split('|').collect();
        if f.len() < 15 {
            return None;
        }
        let num = |s: &str| s.trim().parse::<i64>().unwrap_or(-1);
        Some(StatusLog {
            hostname: f[0].to_string(),
            testname: f[1].to_string(),
            color: f[2].to_string(),
            flags: f[3].to_string(),
            lastchange: num(f[4]),
            logtime: num(f[5]),
            validtime: num(f[6]),
            acktime: num(f[7]),
            disabletime: num(f[8]),
            sender: f[9].to_string(),
            cookie: f[10].to_string(),
            ackmsg: nldecode(f[11]),
            dismsg: nldecode(f[12]),
            client: f[13].to_string(),
            modifiers: nldecode(&f[14..].join("|")),
            body: body.to_string(),
        })
    }

    /// The first line of the body: colour word and summary.
    pub fn line1(&self) -> &str {
        self.body.lines().next().unwrap_or("")
    }
}

/// Reverses xymond's `nlencode`: `\n` `\r` `\t` `\p` (pipe) and `\\`.
pub fn nldecode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('p') => out.push('|'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// Converts `host.name.test` to xymond's `host,name.test` form (commas in the host,
/// the test after the last dot).
pub fn commafy_host_test(host_test: &str) -> String {
    match host_test.rsplit_once('.') {
        Some((host, test)) => format!("{}.{test}", host.replace('.', ",")),
        None => host_test.to_string(),
    }
}

/// One `ghostlist` entry: a host that sent a status but is not in hosts.cfg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ghost {
    /// Host name as sent.
    pub hostname: String,
    /// Sender IP address.
    pub sender: String,
    /// Unix time of the last report.
    pub last_seen: i64,
}

//! The bridge's own column, resolved: its host (by default this machine's name as Xymon knows it), its
//! settings, and which configured test makes which host.test (to name the test behind a ghost).
//!
//! Resolved once by `Plan::compile` from `[self_status]`; read by the supervisor's own-status task.

use crate::config::{Config, SelfStatusConfig};
use crate::names::{HostName, TestName};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where Debian's xymon-client keeps `CLIENTHOSTNAME`, which xymonserver.cfg makes `MACHINEDOTS`.
pub const XYMON_CLIENT_DEFAULTS: &str = "/etc/default/xymon-client";

/// `[self_status]`, resolved.
#[derive(Debug, Clone)]
pub struct SelfStatusPlan {
    pub host: HostName,
    pub column: TestName,
    pub interval: Duration,
    pub disconnect_grace: Duration,
    pub ghost_interval: Duration,
    /// The config file, shown in the status.
    pub config_file: PathBuf,
    /// Every configured test's host and test (templates as written), in config order.
    pub origins: Vec<Origin>,
}

impl SelfStatusPlan {
    /// The status lifetime: two intervals plus five minutes, in whole minutes, as for the tests, so that
    /// one missed status never turns the column purple.
    pub fn lifetime(&self) -> Duration {
        let raw = self.interval * 2 + Duration::from_secs(300);
        Duration::from_secs(raw.as_secs().div_ceil(60).max(1) * 60)
    }
}

/// A configured test as written, to find the one that made a given host.test.
#[derive(Debug, Clone, PartialEq)]
pub struct Origin {
    /// Its index among the config's `[[test]]`s.
    pub index: usize,
    pub host: String,
    pub test: String,
    /// A rule's topic filter.
    pub topic: Option<String>,
}

impl Origin {
    /// Whether this test may have made `host`.`test`: the names match its templates, where a `{capture}`
    /// stands for any non-empty text.
    pub fn made(&self, host: &str, test: &str) -> bool {
        template_matches(&self.host, host) && template_matches(&self.test, test)
    }
}

/// Finds the configured test that made `host`.`test` (the first one whose templates match).
pub fn origin_of<'a>(origins: &'a [Origin], host: &str, test: &str) -> Option<&'a Origin> {
    origins.iter().find(|o| o.made(host, test))
}

/// Whether `name` is `template` with each `{capture}` replaced by some non-empty text. Host names are
/// compared without regard to case, as xymond does.
fn template_matches(template: &str, name: &str) -> bool {
    match template.find('{') {
        None => template.eq_ignore_ascii_case(name),
        Some(open) => {
            let Some(close) = template[open..].find('}').map(|c| open + c) else {
                return template.eq_ignore_ascii_case(name);
            };
            let (head, rest) = (&template[..open], &template[close + 1..]);
            if name.len() < head.len() || !name.is_char_boundary(head.len()) {
                return false;
            }
            if !name[..head.len()].eq_ignore_ascii_case(head) {
                return false;
            }
            let tail = &name[head.len()..];
            // The capture takes at least one character; try every split (names are short).
            (1..=tail.len())
                .filter(|&i| tail.is_char_boundary(i))
                .any(|i| template_matches(rest, &tail[i..]))
        }
    }
}

/// Resolves `[self_status]`; `None` when it is disabled.
pub fn resolve(config: &Config) -> Option<SelfStatusPlan> {
    let s: &SelfStatusConfig = &config.self_status;
    if !s.enabled {
        return None;
    }
    let origins = config
        .tests
        .iter()
        .enumerate()
        .map(|(index, t)| {
            let tc = t.get_ref();
            Origin {
                index,
                host: tc.host.to_string(),
                test: tc.test.to_string(),
                topic: tc.topic.clone(),
            }
        })
        .collect();
    Some(SelfStatusPlan {
        host: s.host.clone().unwrap_or_else(machine_dots),
        column: s.column.clone(),
        interval: s.interval,
        disconnect_grace: s.disconnect_grace,
        ghost_interval: s.ghost_interval,
        config_file: config.origin.path.clone(),
        origins,
    })
}

/// This machine's name as Xymon knows it, the way Debian's xymon sets `MACHINEDOTS`: xymonserver.cfg
/// says `MACHINEDOTS="$XYMONSERVERHOSTNAME"` and `XYMONSERVERHOSTNAME="$CLIENTHOSTNAME"`, read from
/// /etc/default/xymon-client, which the package fills in at install with `hostname -f` (or `hostname`).
/// So: `$MACHINEDOTS` when set (under xymonlaunch), else `CLIENTHOSTNAME`, else the fully qualified
/// name, else the plain host name, else `localhost`; the first that is a valid host name.
pub fn machine_dots() -> HostName {
    let env = std::env::var("MACHINEDOTS").ok();
    let client = client_host_name(Path::new(XYMON_CLIENT_DEFAULTS));
    let plain = host_name();
    let fqdn = plain.as_deref().and_then(fqdn);
    [env, client, fqdn, plain, Some("localhost".into())]
        .into_iter()
        .flatten()
        .find_map(|n| HostName::try_from(n.trim().to_string()).ok())
        // Unreachable: "localhost", the last candidate, is a valid host name.
        .unwrap_or_else(|| HostName::try_from("localhost".to_string()).expect("a valid host name"))
}

/// `CLIENTHOSTNAME` in a shell-style defaults file: the last assignment that is not commented out,
/// without its quotes; `None` when unset, empty or unreadable.
pub fn client_host_name(file: &Path) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    client_host_name_in(&text)
}

fn client_host_name_in(text: &str) -> Option<String> {
    let value = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("CLIENTHOSTNAME="))
        .next_back()?;
    let value = value.split('#').next().unwrap_or("").trim();
    let value = value.trim_matches(|c| c == '"' || c == '\'').trim();
    (!value.is_empty()).then(|| value.to_string())
}

/// gethostname(2).
fn host_name() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that many bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = std::str::from_utf8(&buf[..len]).ok()?;
    (rc == 0 && !name.is_empty()).then(|| name.to_string())
}

/// The canonical name of `host` by the resolver, as `hostname -f` prints it.
fn fqdn(host: &str) -> Option<String> {
    let c_host = std::ffi::CString::new(host).ok()?;
    // SAFETY: zeroed addrinfo is a valid "no hints" value; we set the flags we need.
    let mut hints: libc::addrinfo = unsafe { std::mem::zeroed() };
    hints.ai_flags = libc::AI_CANONNAME;
    hints.ai_family = libc::AF_UNSPEC;
    let mut res: *mut libc::addrinfo = std::ptr::null_mut();
    // SAFETY: valid C string and hints; `res` is freed below when the call succeeded.
    let rc = unsafe { libc::getaddrinfo(c_host.as_ptr(), std::ptr::null(), &hints, &mut res) };
    if rc != 0 || res.is_null() {
        return None;
    }
    // SAFETY: `res` is a list getaddrinfo returned; ai_canonname is NULL or a C string in it.
    let name = unsafe {
        let canon = (*res).ai_canonname;
        let name = (!canon.is_null()).then(|| {
            std::ffi::CStr::from_ptr(canon)
                .to_string_lossy()
                .into_owned()
        });
        libc::freeaddrinfo(res);
        name
    };
    name.filter(|n| !n.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_host_name_reads_the_last_uncommented_assignment() {
        let text = "# CLIENTHOSTNAME=\"old\"\nCLIENTHOSTNAME=\"first\"\nXYMONSERVERS=\"127.0.0.1\"\nCLIENTHOSTNAME=\"xymon.example.com\"  # set by debconf\n";
        assert_eq!(
            client_host_name_in(text).as_deref(),
            Some("xymon.example.com")
        );
        assert_eq!(client_host_name_in("CLIENTHOSTNAME=\"\"\n"), None);
        assert_eq!(client_host_name_in("# CLIENTHOSTNAME=\"x\"\n"), None);
        assert_eq!(
            client_host_name_in("CLIENTHOSTNAME=plain\n").as_deref(),
            Some("plain")
        );
    }

    #[test]
    fn machine_dots_is_a_valid_host_name() {
        // Whatever this machine is called, the result is usable on line 1 of a status.
        let h = machine_dots();
        assert!(!h.as_str().is_empty());
    }

    #[test]
    fn templates_match_the_names_they_make() {
        let o = Origin {
            index: 2,
            host: "sensro-{host}".into(),
            test: "{kind}".into(),
            topic: Some("sensors/{host}/{kind}".into()),
        };
        assert!(o.made("sensro-kitchen", "env"));
        assert!(o.made("SENSRO-kitchen", "env"));
        assert!(!o.made("sensor-kitchen", "env"));
        assert!(!o.made("sensro-", "env"));
        let literal = Origin {
            index: 0,
            host: "greenhouse".into(),
            test: "env".into(),
            topic: None,
        };
        assert!(literal.made("greenhouse", "env"));
        assert!(!literal.made("greenhouse", "env2"));
        let two = Origin {
            index: 1,
            host: "{site}-{room}.example".into(),
            test: "t".into(),
            topic: None,
        };
        assert!(two.made("a-b-c.example", "t"));
        assert!(!two.made("ab.example", "t"));
        let origins = [literal, o];
        assert_eq!(
            origin_of(&origins, "sensro-x", "env").map(|o| o.index),
            Some(2)
        );
        assert_eq!(origin_of(&origins, "nobody", "env"), None);
    }
}

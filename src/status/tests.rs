use super::*;
use crate::collect::round::Round;
use crate::config::fixtures;
use bytes::Bytes;
use tokio::time::Instant;

fn tests() -> Vec<TestConfig> {
    fixtures::tests(fixtures::TOPICS_AND_BROKER_STATS)
}

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000)
}

fn reading(v: &str) -> Reading {
    Reading {
        payload: Bytes::copy_from_slice(v.as_bytes()),
        retained: false,
        at: now(),
    }
}

fn round(values: &[Option<&str>], took_ms: u64) -> Closed {
    let t0 = Instant::now();
    let mut r = Round::open(values.len(), t0, now(), Duration::from_millis(500));
    for (i, v) in values.iter().enumerate() {
        if let Some(v) = v {
            r.offer(i, reading(v));
        }
    }
    r.close(t0 + Duration::from_millis(took_ms))
}

fn nothing_known(_: usize) -> Option<TopicValue> {
    None
}

fn ctx(last_known: &dyn Fn(usize) -> Option<TopicValue>) -> Context<'_> {
    Context {
        now: now(),
        max_value_chars: 512,
        last_known,
    }
}

#[test]
fn complete_round_is_green_with_the_values() {
    let t = &tests()[0];
    let closed = round(&[Some("21.5"), Some("55")], 3);
    let s = topics_status(t, &t.topic_list(), &closed, &ctx(&nothing_known));
    let date = timestamp(now());
    assert_eq!(s.colour, Colour::Green);
    assert_eq!(
        s.to_wire(),
        format!(
            "status+15 greenhouse.env green {date} env: all 2 topics received\n\
             \n\
             &green sensors/greenhouse/temperature = 21.5\n\
             &green sensors/greenhouse/humidity = 55\n\
             \n\
             Round opened {date}, complete after 3 ms (window 500 ms); broker local\n"
        )
    );
}

#[test]
fn missing_topic_is_yellow_and_named() {
    let t = &tests()[0];
    let closed = round(&[Some("21.5"), None], 500);
    let last = |i: usize| {
        (i == 1).then(|| TopicValue {
            payload: Bytes::from_static(b"54"),
            size: 2,
            received_at: now() - Duration::from_secs(300),
            changed_at: now() - Duration::from_secs(300),
            qos: 0,
            retained: false,
            count: 1,
        })
    };
    let s = topics_status(t, &t.topic_list(), &closed, &ctx(&last));
    assert_eq!(s.colour, Colour::Yellow);
    assert!(
        s.summary.ends_with("env: 1 of 2 topics missing"),
        "{}",
        s.summary
    );
    assert!(
        s.body.contains(
            "&yellow Missing topic: sensors/greenhouse/humidity (not received within 500 ms of the first topic; last value 54, received 5m ago)"
        ),
        "{}",
        s.body
    );
    assert!(s.body.contains("closed after 500 ms"));
}

#[test]
fn changed_value_is_yellow() {
    let t = &tests()[0];
    let t0 = Instant::now();
    let mut r = Round::open(2, t0, now(), Duration::from_millis(500));
    r.offer(0, reading("21.5"));
    r.offer(0, reading("30"));
    r.offer(1, reading("55"));
    let s = topics_status(t, &t.topic_list(), &r.close(t0), &ctx(&nothing_known));
    assert_eq!(s.colour, Colour::Yellow);
    assert!(s.body.contains(
        "&yellow Topic received more than once in one round with different values: sensors/greenhouse/temperature: 21.5, then 30"
    ));
}

#[test]
fn hostile_payloads_are_neutralised() {
    let t = &tests()[0];
    let hostile = [
        "<script>alert(1)</script>",
        "1\nStatus message received from 10.9.8.7",
        "2\n\nstatus other,host.t red pwned",
        "&red fake",
        "nul\0byte",
    ];
    for payload in hostile {
        let closed = round(&[Some(payload), Some(&"y".repeat(1 << 20))], 1);
        let wire = topics_status(t, &t.topic_list(), &closed, &ctx(&nothing_known)).to_wire();
        assert!(!wire.contains("<script>"), "{wire}");
        assert!(!wire.contains("\nStatus message received from"), "{wire}");
        assert!(!wire.contains("\n\nstatus"), "{wire}");
        assert!(!wire.contains("\nstatus"), "{wire}");
        assert!(!wire.contains("&red"), "{wire}");
        assert!(!wire.contains('\0'));
        assert!(
            wire.len() < 4096,
            "a 1 MiB payload made a {} byte status",
            wire.len()
        );
        assert!(
            wire.starts_with("status+15 greenhouse.env green "),
            "{wire}"
        );
    }
}

fn stats_round(values: [Option<&str>; 5]) -> Closed {
    round(&values, 2)
}

#[test]
fn broker_stats_first_then_rates() {
    let t = &tests()[1];
    let first = stats_round([
        Some("1000"),
        Some("2000"),
        Some("10"),
        Some("20"),
        Some("3"),
    ]);
    let (s1, c1) = broker_stats_status(t, &first, None, &ctx(&nothing_known));
    assert_eq!(s1.colour, Colour::Green);
    assert_eq!(
        c1.values,
        [Some(1000), Some(2000), Some(10), Some(20), Some(3)]
    );
    assert!(
        s1.body
            .contains("  Octets     received               1000\n"),
        "{}",
        s1.body
    );
    assert!(s1.body.contains("Rates: first snapshot"));
    assert!(s1
        .to_wire()
        .starts_with("status+15 mqtt-broker.mqtt green "));

    let mut prev = c1.clone();
    prev.at = now() - Duration::from_secs(300);
    let second = stats_round([
        Some("31000"),
        Some("2000"),
        Some("310"),
        Some("320"),
        Some("3"),
    ]);
    let (s2, c2) = broker_stats_status(t, &second, Some(&prev), &ctx(&nothing_known));
    assert_eq!(c2.values[0], Some(31000));
    assert!(s2.body.contains("Rates over the last 5m"), "{}", s2.body);
    // (310-10)/300 = 1 msg/s; (31000-1000)*8/300 = 800 bit/s
    assert!(
        s2.body
            .contains("  Messages   received               1.00 msg/s"),
        "{}",
        s2.body
    );
    assert!(
        s2.body
            .contains("  Bits       received             800.00 bit/s"),
        "{}",
        s2.body
    );
    assert!(
        s2.body
            .contains("  Bits       transmitted            0.00 bit/s"),
        "{}",
        s2.body
    );
}

#[test]
fn broker_stats_uses_last_known_values_and_says_how_old() {
    let t = &tests()[1];
    let closed = stats_round([Some("1"), Some("2"), Some("3"), Some("4"), None]);
    let last = |i: usize| {
        (i == 4).then(|| TopicValue {
            payload: Bytes::from_static(b"7"),
            size: 1,
            received_at: now() - Duration::from_secs(42),
            changed_at: now() - Duration::from_secs(42),
            qos: 0,
            retained: true,
            count: 1,
        })
    };
    let (s, c) = broker_stats_status(t, &closed, None, &ctx(&last));
    assert_eq!(s.colour, Colour::Green);
    assert_eq!(c.values[4], Some(7));
    assert!(s.body.contains(
        "$SYS/broker/messages/stored: not in this round; using the last value, received 42s ago"
    ));
    let (s, c) = broker_stats_status(t, &closed, None, &ctx(&nothing_known));
    assert_eq!(s.colour, Colour::Yellow);
    assert_eq!(c.values[4], None);
    assert!(s
        .body
        .contains("&yellow No value yet for $SYS/broker/messages/stored"));
}

#[test]
fn broker_stats_counter_reset_and_garbage() {
    let t = &tests()[1];
    let prev = Counters {
        at: now() - Duration::from_secs(60),
        values: [Some(500), Some(1), Some(1), Some(1), Some(1)],
    };
    let closed = stats_round([
        Some("10"),
        Some("<b>x</b>"),
        Some("1"),
        Some("1"),
        Some("1"),
    ]);
    let (s, c) = broker_stats_status(t, &closed, Some(&prev), &ctx(&nothing_known));
    assert_eq!(s.colour, Colour::Yellow);
    assert_eq!(c.values[1], None);
    assert!(s
        .body
        .contains("&yellow $SYS/broker/bytes/sent is not a counter: &lt;b&gt;x&lt;/b&gt;"));
    assert!(s.body.contains("counter went back"));
}

#[test]
fn broker_down_is_red_for_stats_yellow_for_topics_and_the_error_cannot_split_the_message() {
    let t = tests();
    let hostile = "refused\nstatus evil.host red injected\n<script>";
    let topics = broker_down_status(&t[0], Some(hostile), now());
    assert_eq!(topics.colour, Colour::Yellow);
    assert_eq!(topics.host.as_str(), "greenhouse");
    assert_eq!(topics.lifetime, t[0].lifetime());
    assert!(topics.summary.ends_with("broker local is not connected"));
    assert!(!topics.body.contains("<script>"), "{}", topics.body);
    // Every line of the error after the first is indented, so none starts a Xymon message of its own.
    let wire = topics.to_wire();
    assert_eq!(
        wire.lines().filter(|l| l.starts_with("status")).count(),
        1,
        "{wire}"
    );
    assert!(topics
        .body
        .contains("Cannot reach MQTT broker local: refused"));
    let stats = broker_down_status(&t[1], None, now());
    assert_eq!(stats.colour, Colour::Red);
    assert_eq!(stats.body, "\n&red Cannot reach MQTT broker local\n");
}

#[test]
fn timestamps_outside_chronos_range_do_not_panic() {
    let at = |secs: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
    // The same text as chrono's own conversion, in local time.
    let t = at(1_796_050_088);
    let want = chrono::DateTime::<chrono::Local>::from(t)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string();
    assert_eq!(timestamp(t), want);
    // Early December 9999: the same year in every time zone.
    assert!(timestamp(at(253_400_000_000)).starts_with("9999-12-0"));
    // Past year 262,142 chrono's `From<SystemTime>` panics; here it is named.
    assert_eq!(timestamp(at(10_000_000_000_000)), "(time out of range)");
    assert_eq!(timestamp(at(u64::MAX >> 2)), "(time out of range)");
    // Before 1970 is a date like any other, rounded down like chrono's own conversion (mid-1969, the
    // same year in every time zone).
    let before = SystemTime::UNIX_EPOCH - Duration::from_millis(180 * 86_400_000 + 500);
    let want = chrono::DateTime::<chrono::Local>::from(before)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string();
    assert!(want.starts_with("1969-"), "{want}");
    assert_eq!(timestamp(before), want);
}

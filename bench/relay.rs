//! The no-work baseline of scenario 3: an MQTT-to-Xymon relay with nothing in it but the two hops, on the
//! same broker and xymond as the bridge. At low rates it is a floor for any bridge; at high rates it is
//! not, as it handles one round at a time and never batches statuses into a `combo`.
//!
//! One blocking thread, no async runtime, no store, no rules: a raw MQTT 3.1.1 subscriber on a plain
//! `std` socket (QoS 0) that, when the last topic of a round (`…/c`) arrives, opens a connection to xymond,
//! writes one status carrying the round's marker, shuts down its write side and reads to EOF, as the
//! bridge's sender does. Everything between the publisher and the tap that is not the bridge (broker,
//! loopback TCP, xymond, its status channel, the tap) is in this figure too, so the bridge's latency
//! against it is what the bridge itself adds.

use crate::flood::encode_connect;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::thread::JoinHandle;

pub struct Relay {
    stream: TcpStream,
    thread: Option<JoinHandle<()>>,
}

/// Reads one MQTT packet: (first byte, body).
fn read_packet(s: &mut TcpStream) -> io::Result<(u8, Vec<u8>)> {
    let mut first = [0u8; 1];
    s.read_exact(&mut first)?;
    let (mut len, mut shift) = (0usize, 0);
    loop {
        let mut b = [0u8; 1];
        s.read_exact(&mut b)?;
        len |= usize::from(b[0] & 0x7f) << shift;
        if b[0] & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    let mut body = vec![0u8; len];
    s.read_exact(&mut body)?;
    Ok((first[0], body))
}

fn send_status(xymond: &str, message: &str) -> io::Result<()> {
    let mut s = TcpStream::connect(xymond)?;
    s.write_all(message.as_bytes())?;
    s.shutdown(Shutdown::Write)?;
    let mut sink = Vec::new();
    s.read_to_end(&mut sink)?;
    Ok(())
}

impl Relay {
    /// Subscribes to `{prefix}/#` (topics `{prefix}/{host}/{a,b,c}`) and relays each round's `c` topic as
    /// `status {host}.{test} green <payload>`.
    pub fn start(
        mqtt_port: u16,
        xymond: String,
        prefix: &str,
        test: &'static str,
    ) -> io::Result<Relay> {
        let mut s = TcpStream::connect(("127.0.0.1", mqtt_port))?;
        s.set_nodelay(true)?;
        // Keep-alive 0: the relay sends nothing after SUBSCRIBE, so with any other value the broker would
        // drop it after 1.5 keep-alives of silence.
        s.write_all(&encode_connect("bench-relay", 0))?;
        let (t, _) = read_packet(&mut s)?;
        if t != 0x20 {
            return Err(io::Error::other(format!("expected CONNACK, got {t:#x}")));
        }
        let filter = format!("{prefix}/#");
        let mut sub = vec![0x82, (2 + 2 + filter.len() + 1) as u8, 0, 1];
        sub.extend_from_slice(&(filter.len() as u16).to_be_bytes());
        sub.extend_from_slice(filter.as_bytes());
        sub.push(0);
        s.write_all(&sub)?;
        let (t, _) = read_packet(&mut s)?;
        if t != 0x90 {
            return Err(io::Error::other(format!("expected SUBACK, got {t:#x}")));
        }
        let mut reader = s.try_clone()?;
        let thread = std::thread::spawn(move || {
            while let Ok((first, body)) = read_packet(&mut reader) {
                if first & 0xf0 != 0x30 || body.len() < 2 {
                    continue;
                }
                let tlen = usize::from(u16::from_be_bytes([body[0], body[1]]));
                let Some(topic) = body.get(2..2 + tlen) else {
                    continue;
                };
                let topic = String::from_utf8_lossy(topic);
                let payload = String::from_utf8_lossy(&body[2 + tlen..]);
                let mut parts = topic.rsplit('/');
                if parts.next() != Some("c") {
                    continue;
                }
                let Some(host) = parts.next() else { continue };
                let msg = format!("status+300 {host}.{test} green relayed\n{payload}\n");
                if let Err(e) = send_status(&xymond, &msg) {
                    eprintln!("bench relay: {e}");
                }
            }
        });
        Ok(Relay {
            stream: s,
            thread: Some(thread),
        })
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.stream.write_all(&[0xE0, 0]);
        let _ = self.stream.shutdown(Shutdown::Both);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

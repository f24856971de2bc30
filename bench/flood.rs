//! A minimal MQTT 3.1.1 publisher on a plain `std` TCP socket: QoS 0 only, packets encoded by hand into
//! one buffer, so the publisher costs the broker's CPU as little as possible and is never the bottleneck
//! of an ingest figure. `sync()` (PINGREQ → PINGRESP) proves the broker has read everything sent before.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

pub struct Publisher {
    stream: TcpStream,
}

/// MQTT's variable-length "remaining length".
fn put_len(buf: &mut Vec<u8>, mut n: usize) {
    loop {
        let mut byte = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            byte |= 0x80;
        }
        buf.push(byte);
        if n == 0 {
            break;
        }
    }
}

/// Appends one QoS 0 PUBLISH; returns the offset of the payload in `buf`.
pub fn encode_publish(buf: &mut Vec<u8>, topic: &str, payload: &[u8]) -> usize {
    buf.push(0x30);
    put_len(buf, 2 + topic.len() + payload.len());
    buf.extend_from_slice(&(topic.len() as u16).to_be_bytes());
    buf.extend_from_slice(topic.as_bytes());
    let at = buf.len();
    buf.extend_from_slice(payload);
    at
}

/// Appends one QoS 0 PUBLISH with the retain flag (an empty payload clears the topic's retained message).
pub fn encode_publish_retained(buf: &mut Vec<u8>, topic: &str, payload: &[u8]) {
    let start = buf.len();
    encode_publish(buf, topic, payload);
    buf[start] |= 0x01;
}

/// One MQTT 3.1.1 CONNECT with a clean session, no will and no credentials.
pub fn encode_connect(client_id: &str, keep_alive_secs: u16) -> Vec<u8> {
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, 0x02];
    body.extend_from_slice(&keep_alive_secs.to_be_bytes());
    body.extend_from_slice(&(client_id.len() as u16).to_be_bytes());
    body.extend_from_slice(client_id.as_bytes());
    let mut pkt = vec![0x10];
    put_len(&mut pkt, body.len());
    pkt.extend_from_slice(&body);
    pkt
}

impl Publisher {
    pub fn connect(port: u16, client_id: &str) -> io::Result<Publisher> {
        let mut stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_nodelay(true)?;
        stream.write_all(&encode_connect(client_id, 120))?;
        let mut ack = [0u8; 4];
        stream.read_exact(&mut ack)?;
        if ack[0] != 0x20 || ack[3] != 0 {
            return Err(io::Error::other(format!("CONNACK refused: {ack:?}")));
        }
        Ok(Publisher { stream })
    }

    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// PINGREQ and wait for PINGRESP: the broker has read (and routed) everything sent before.
    pub fn sync(&mut self) -> io::Result<()> {
        self.stream.write_all(&[0xC0, 0])?;
        let mut resp = [0u8; 2];
        self.stream.read_exact(&mut resp)?;
        Ok(())
    }

    /// Publishes `total` messages cycling through `topics`, each with a 32-byte payload that changes every
    /// cycle (so the bridge's store really copies a new value each time). Returns the time it took to hand
    /// them all to the kernel.
    pub fn flood(&mut self, topics: &[String], total: usize) -> io::Result<Duration> {
        let mut stamp = (0, [0u8; 16]);
        self.flood_with(
            topics,
            total,
            |i| format!("{:016}{:016}", 0, i).into_bytes(),
            |_, cycle, payload| {
                if stamp.0 != cycle {
                    stamp = (cycle, [0u8; 16]);
                    stamp.1.copy_from_slice(format!("{cycle:016}").as_bytes());
                }
                payload[..16].copy_from_slice(&stamp.1);
            },
        )
    }

    /// Publishes `total` messages cycling through `topics`: topic `i`'s payload starts as `payload(i)`,
    /// and `patch(i, cycle, bytes)` rewrites it in place (same length) before each cycle's write, cycles
    /// counting from 1. The packets of a cycle are encoded once and written in one go. Returns the time it
    /// took to hand them all to the kernel.
    pub fn flood_with(
        &mut self,
        topics: &[String],
        total: usize,
        payload: impl Fn(usize) -> Vec<u8>,
        mut patch: impl FnMut(usize, u64, &mut [u8]),
    ) -> io::Result<Duration> {
        let mut cycle_buf = Vec::with_capacity(topics.len() * 64);
        let mut payloads = Vec::with_capacity(topics.len());
        for (i, t) in topics.iter().enumerate() {
            let p = payload(i);
            let at = encode_publish(&mut cycle_buf, t, &p);
            payloads.push(at..at + p.len());
        }
        let started = Instant::now();
        let mut sent = 0;
        let mut cycle = 0u64;
        while sent < total {
            cycle += 1;
            let n = (total - sent).min(topics.len());
            for (i, range) in payloads[..n].iter().enumerate() {
                patch(i, cycle, &mut cycle_buf[range.clone()]);
            }
            self.stream.write_all(&cycle_buf[..payloads[n - 1].end])?;
            sent += n;
        }
        Ok(started.elapsed())
    }

    pub fn disconnect(mut self) {
        let _ = self.stream.write_all(&[0xE0, 0]);
    }
}

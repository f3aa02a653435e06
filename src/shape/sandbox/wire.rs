//! What crosses the sandbox's pipes: frames of a little-endian `u32` length and
//! that many bytes. Event bodies are JSON already and cross as they are.
//!
//! - hello (child → parent, once at start): [`HELLO`]
//! - request: `source`, then the envelope bodies to render, each length-prefixed
//! - response: one result per envelope: tag `0` and the rendered body, or tag `1`
//!   and the `ShapeError` as JSON

use std::io::{self, Read, Write};

use bytes::Bytes;

use super::super::error::ShapeError;

/// The child's first frame: names the protocol, so a program that is not this
/// build's sandbox is noticed at once.
pub const HELLO: &[u8] =
    concat!("decnet-template-sandbox/1 ", env!("CARGO_PKG_VERSION")).as_bytes();

/// A request the child takes: the template source and the envelopes to render.
pub struct Request<'a> {
    pub source: &'a str,
    pub envelopes: Vec<&'a [u8]>,
}

/// Length-prefix `body` into `out`.
fn put(out: &mut Vec<u8>, body: &[u8]) -> io::Result<()> {
    let len = u32::try_from(body.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame part over 4 GiB"))?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(body);
    Ok(())
}

/// A whole frame, length included, ready to write.
pub fn frame(body: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(body.len() + 4);
    put(&mut out, body)?;
    Ok(out)
}

pub fn encode_request(source: &str, envelopes: &[Bytes]) -> io::Result<Vec<u8>> {
    let len = 12 + source.len() + envelopes.iter().map(|e| e.len() + 4).sum::<usize>();
    let mut body = Vec::with_capacity(len);
    put(&mut body, source.as_bytes())?;
    let count = u32::try_from(envelopes.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "too many envelopes"))?;
    body.extend_from_slice(&count.to_le_bytes());
    for envelope in envelopes {
        put(&mut body, envelope)?;
    }
    frame(&body)
}

pub fn decode_request(body: &[u8]) -> Option<Request<'_>> {
    let mut cur = Cursor(body);
    let source = std::str::from_utf8(cur.part()?).ok()?;
    let count = cur.u32()?;
    let envelopes = (0..count).map(|_| cur.part()).collect::<Option<Vec<_>>>()?;
    Some(Request { source, envelopes })
}

pub fn encode_response(results: &[Result<Bytes, ShapeError>]) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    let count = u32::try_from(results.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "too many results"))?;
    body.extend_from_slice(&count.to_le_bytes());
    for result in results {
        match result {
            Ok(rendered) => {
                body.push(0);
                put(&mut body, rendered)?;
            }
            Err(e) => {
                body.push(1);
                put(&mut body, &serde_json::to_vec(e)?)?;
            }
        }
    }
    frame(&body)
}

pub fn decode_response(body: &[u8]) -> Option<Vec<Result<Bytes, ShapeError>>> {
    let mut cur = Cursor(body);
    let count = cur.u32()?;
    (0..count)
        .map(|_| {
            let tag = cur.byte()?;
            let part = cur.part()?;
            match tag {
                0 => Some(Ok(Bytes::copy_from_slice(part))),
                1 => serde_json::from_slice(part).ok().map(Err),
                _ => None,
            }
        })
        .collect()
}

/// Read one frame of at most `max` bytes; `None` at a clean end of input.
pub fn read_frame(r: &mut impl Read, max: usize) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes is over {max}"),
        ));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    Ok(Some(body))
}

pub fn write_all(w: &mut impl Write, frame: &[u8]) -> io::Result<()> {
    w.write_all(frame)?;
    w.flush()
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn byte(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u32(&mut self) -> Option<u32> {
        let b = self.take(4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn part(&mut self) -> Option<&'a [u8]> {
        let len = self.u32()? as usize;
        self.take(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unframe(frame: &[u8]) -> Vec<u8> {
        read_frame(&mut &frame[..], usize::MAX).unwrap().unwrap()
    }

    #[test]
    fn requests_and_responses_round_trip() {
        let envelopes = [Bytes::from_static(b"{\"id\":\"a\"}"), Bytes::new()];
        let frame = encode_request("{{ id }}", &envelopes).unwrap();
        let body = unframe(&frame);
        let req = decode_request(&body).unwrap();
        assert_eq!(req.source, "{{ id }}");
        assert_eq!(req.envelopes, [&b"{\"id\":\"a\"}"[..], b""]);

        let results = vec![
            Ok(Bytes::from_static(b"\"a\"")),
            Err(ShapeError::Syntax {
                line: Some(2),
                message: "unexpected end".into(),
            }),
        ];
        let frame = encode_response(&results).unwrap();
        assert_eq!(decode_response(&unframe(&frame)).unwrap(), results);
    }

    #[test]
    fn truncated_or_oversize_frames_are_refused() {
        let frame = encode_request("{{ id }}", &[Bytes::from_static(b"{}")]).unwrap();
        let body = unframe(&frame);
        assert!(decode_request(&body[..body.len() - 1]).is_none());
        assert!(read_frame(&mut &frame[..frame.len() - 1], usize::MAX).is_err());
        assert!(read_frame(&mut &frame[..], 3).is_err());
        assert!(read_frame(&mut &b""[..], 3).unwrap().is_none());
    }
}

//! The save-stream filter: a tar pass-through that drops the `layer.tar`
//! (or OCI blob) of every layer the target engine already has, keeping one
//! header and the small per-layer `json` files in memory, never a layer.

use std::collections::HashMap;

use super::{chain_ids, v1_position};

/// A layer file met in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerSeen {
    /// Position in the image's layers, when proven.
    pub position: Option<usize>,
    pub bytes: u64,
    pub sent: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("the image stream is not a tar archive: {0}")]
pub struct FilterError(String);

enum Mode {
    Forward,
    Drop,
    /// Held back until the entry it describes is decided (PAX, GNU long name).
    Hold,
}

/// The save-stream filter: feed it the export's bytes in any chunking, get
/// the bytes to load.
pub struct SaveFilter {
    diff_ids: Vec<String>,
    chains: Vec<String>,
    skip: Vec<bool>,
    header: Vec<u8>,
    remaining: u64,
    mode: Mode,
    /// A `json` being read (its directory, its bytes so far, its size).
    capture: Option<(String, Vec<u8>, usize)>,
    /// Extension headers (PAX, GNU long name) waiting for their entry.
    held: Vec<u8>,
    ext_at: usize,
    long_name: Option<String>,
    dir_pos: HashMap<String, usize>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub layers: Vec<LayerSeen>,
}

impl SaveFilter {
    pub fn new(diff_ids: Vec<String>, skip: Vec<bool>) -> SaveFilter {
        SaveFilter {
            chains: chain_ids(&diff_ids),
            diff_ids,
            skip,
            header: Vec::with_capacity(512),
            remaining: 0,
            mode: Mode::Forward,
            capture: None,
            held: Vec::new(),
            ext_at: 0,
            long_name: None,
            dir_pos: HashMap::new(),
            bytes_in: 0,
            bytes_out: 0,
            layers: Vec::new(),
        }
    }

    pub fn push(&mut self, mut chunk: &[u8], out: &mut Vec<u8>) -> Result<(), FilterError> {
        self.bytes_in += chunk.len() as u64;
        let start = out.len();
        while !chunk.is_empty() {
            if self.remaining > 0 {
                let n = (self.remaining.min(chunk.len() as u64)) as usize;
                let (now, rest) = chunk.split_at(n);
                match self.mode {
                    Mode::Forward => out.extend_from_slice(now),
                    Mode::Drop => {}
                    Mode::Hold => self.held.extend_from_slice(now),
                }
                if let Some((_, buf, _)) = &mut self.capture {
                    buf.extend_from_slice(now);
                }
                self.remaining -= n as u64;
                chunk = rest;
                if self.remaining == 0 {
                    self.entry_done();
                }
                continue;
            }
            let need = 512 - self.header.len();
            let n = need.min(chunk.len());
            self.header.extend_from_slice(&chunk[..n]);
            chunk = &chunk[n..];
            if self.header.len() == 512 {
                let h = std::mem::take(&mut self.header);
                self.on_header(h, out)?;
            }
        }
        self.bytes_out += (out.len() - start) as u64;
        Ok(())
    }

    fn entry_done(&mut self) {
        if matches!(self.mode, Mode::Hold) {
            let ext = &self.held[self.ext_at..];
            let data = &ext[512..];
            let name = if ext[156] == b'L' {
                Some(cstr(data))
            } else {
                pax_path(data)
            };
            if name.is_some() {
                self.long_name = name;
            }
        }
        if let Some((dir, mut buf, size)) = self.capture.take() {
            buf.truncate(size);
            if let Some(p) = v1_position(&buf, &self.chains) {
                self.dir_pos.insert(dir, p);
            }
        }
    }

    fn on_header(&mut self, h: Vec<u8>, out: &mut Vec<u8>) -> Result<(), FilterError> {
        if h.iter().all(|&b| b == 0) {
            out.extend_from_slice(&self.held);
            self.held.clear();
            out.extend_from_slice(&h);
            return Ok(());
        }
        let size = octal(&h[124..136])?;
        let padded = size.div_ceil(512) * 512;
        let kind = h[156];
        if matches!(kind, b'x' | b'L') {
            self.ext_at = self.held.len();
            self.held.extend_from_slice(&h);
            self.mode = Mode::Hold;
            self.remaining = padded;
            if padded == 0 {
                self.entry_done();
            }
            return Ok(());
        }
        let name = match self.long_name.take() {
            Some(n) => n,
            None if &h[257..262] == b"ustar" && h[345] != 0 => {
                format!("{}/{}", cstr(&h[345..500]), cstr(&h[..100]))
            }
            None => cstr(&h[..100]),
        };
        let name = name.trim_start_matches("./");
        let regular = matches!(kind, b'0' | 0);
        let mut position = None;
        let mut layer = false;
        if let Some(dir) = name.strip_suffix("/layer.tar").filter(|_| regular) {
            layer = true;
            position = self.dir_pos.get(dir).copied();
        } else if let Some(hex) = name.strip_prefix("blobs/sha256/").filter(|_| regular) {
            let id = format!("sha256:{hex}");
            if let Some(p) = self.diff_ids.iter().position(|d| *d == id) {
                layer = true;
                position = Some(p);
            }
        }
        let drop = position.is_some_and(|p| self.skip.get(p) == Some(&true));
        if layer {
            self.layers.push(LayerSeen {
                position,
                bytes: size,
                sent: !drop,
            });
        }
        if drop {
            self.held.clear();
            self.mode = Mode::Drop;
        } else {
            out.extend_from_slice(&self.held);
            self.held.clear();
            out.extend_from_slice(&h);
            self.mode = Mode::Forward;
        }
        if let Some(dir) = name.strip_suffix("/json") {
            if regular && size <= 1 << 20 {
                self.capture = Some((
                    dir.to_owned(),
                    Vec::with_capacity(padded as usize),
                    size as usize,
                ));
            }
        }
        self.remaining = padded;
        if padded == 0 {
            self.entry_done();
        }
        Ok(())
    }

    /// Call at the end of the export: the stream must end on an entry boundary.
    pub fn finish(&self) -> Result<(), FilterError> {
        if self.remaining > 0 || !self.header.is_empty() {
            return Err(FilterError("it ends in the middle of an entry".into()));
        }
        Ok(())
    }
}

fn octal(field: &[u8]) -> Result<u64, FilterError> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        // base-256, for sizes of 8 GiB and more
        let mut v: u64 = u64::from(field[0] & 0x7f);
        for &b in &field[1..] {
            v = v
                .checked_mul(256)
                .ok_or_else(|| FilterError("size overflow".into()))?
                + u64::from(b);
        }
        return Ok(v);
    }
    let s: String = field
        .iter()
        .take_while(|&&b| b != 0)
        .map(|&b| b as char)
        .collect();
    let s = s.trim();
    if s.is_empty() {
        return Ok(0);
    }
    u64::from_str_radix(s, 8).map_err(|_| FilterError(format!("bad size field {s:?}")))
}

fn cstr(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

/// The `path` record of a PAX extended header (`"%d path=%s\n"` records).
fn pax_path(mut data: &[u8]) -> Option<String> {
    let mut found = None;
    while !data.is_empty() {
        let sp = data.iter().position(|&b| b == b' ')?;
        let len: usize = std::str::from_utf8(&data[..sp]).ok()?.parse().ok()?;
        if len <= sp || len > data.len() {
            return found;
        }
        let rec = &data[sp + 1..len];
        if let Some(v) = rec.strip_prefix(b"path=") {
            let v = v.strip_suffix(b"\n").unwrap_or(v);
            found = Some(String::from_utf8_lossy(v).into_owned());
        }
        data = &data[len..];
    }
    found
}
